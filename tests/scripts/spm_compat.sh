#!/usr/bin/env bash
# spm_compat_names.sh — `gtr tokenize --spm-compat 0.2.2` against the current SentencePiece
# release from PyPI (in .venv-test), which breaks score ties the 0.2.2 way: every reference
# text, the SciFact corpus and queries, runs of repeated characters, and one ~0.5 MB text
# whose path scores pass the 1e5 re-basing threshold many times. (The default, 0.1, is checked
# against ../shared's SentencePiece 0.1.97 ids by tests/test_tokenizer.c.) Without pip or
# network to create the venv, the test is skipped, not failed.
cd "$(dirname "$0")/../.." || exit 1
. tests/scripts/test_venv.sh.inc
use_test_venv "sentencepiece and transformers" sentencepiece
exec "$PY" tests/scripts/spm_compat.py --gtr "${GTR:-bin/gtr}" --shared "${GTR_SHARED:-../shared}"
