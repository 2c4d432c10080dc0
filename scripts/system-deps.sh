#!/usr/bin/env bash
# Debian packages Strataflow needs at run time or in its tests, installed only when missing.
set -euo pipefail

PACKAGES=(
  postgresql-client   # pg_isready in .ci/run
  tesseract-ocr       # OCR in the image, multimodal and document_graph extractors
  tesseract-ocr-eng   # its English language data
  espeak-ng           # speaks the test sentences that Whisper must transcribe
  chromium            # the web console test drives a real headless browser
  chromium-driver     # its WebDriver (Playwright launches the same binary)
)

missing=()
for pkg in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  echo "installing Debian packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
