"""Vision–language models (CLIP, SigLIP) the operator provides: catalogue, loading, batched embedding."""
