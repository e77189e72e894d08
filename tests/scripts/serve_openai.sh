#!/usr/bin/env bash
# serve_openai.sh — `gtr serve` driven by the official `openai` Python client from PyPI,
# unchanged: OpenAI(base_url="http://127.0.0.1:PORT/v1", api_key=...).embeddings.create(...) with
# the client's default encoding (base64) and with "float", the async client concurrently, error
# mapping; the vectors must equal `gtr embed`'s .npy exactly. The client lives in .venv-test
# (scripts/venv.sh test); without pip or network to create it, the test is skipped, not failed.
cd "$(dirname "$0")/../.." || exit 1
GTR=${GTR:-bin/gtr}
SHARED=${GTR_SHARED:-../shared}
export NO_PROXY=127.0.0.1,localhost no_proxy=127.0.0.1,localhost
. tests/scripts/test_venv.sh.inc
use_test_venv "the openai client" openai numpy
exec "$PY" tests/scripts/serve_openai_client.py --gtr "$GTR" --model "$SHARED/models/gtr-tiny"
