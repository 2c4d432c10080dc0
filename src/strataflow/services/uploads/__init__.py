"""Presigned uploads: the rules, create, multipart, confirm, the jobs behind confirms."""
