"""serve_openai_client.py — run by serve_openai.sh inside .venv-test (not executable itself).

Starts `gtr serve` on a free port, drives it with the official openai client and prints TAP.
The reference is `gtr embed` on the same texts (a .npy): the served vectors must be identical.
"""
import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np
import openai

from taplib import check, exit_status, tests_run


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gtr", default="bin/gtr")
    ap.add_argument("--model", required=True)
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="gtr-openai-")
    # the reference texts: edge cases (whitespace, NFKC, CJK, emoji, controls) and long passages
    # (truncated at 512 tokens); the API refuses empty strings, as OpenAI's does
    texts = []
    with open(os.path.join(args.model, "reference", "texts.jsonl"), encoding="utf-8") as f:
        for line in f:
            t = json.loads(line)
            if t:
                texts.append(t)
    tpath = os.path.join(tmp, "texts.jsonl")
    with open(tpath, "w", encoding="utf-8") as f:
        for t in texts:
            f.write(json.dumps(t) + "\n")
    npy = os.path.join(tmp, "ref.npy")
    subprocess.run([args.gtr, "embed", "-m", args.model, "-i", tpath, "-o", npy, "-q"], check=True)
    ref = np.load(npy)

    print("1..11")
    port_file = os.path.join(tmp, "port")
    srv = subprocess.Popen([args.gtr, "serve", "-m", args.model, "--port", "0", "--port-file", port_file,
                            "--model-name", "gtr-tiny", "-q"])
    try:
        for _ in range(400):
            if os.path.exists(port_file) or srv.poll() is not None:
                break
            time.sleep(0.05)
        port = int(open(port_file).read())
        base = f"http://127.0.0.1:{port}/v1"
        client = openai.OpenAI(base_url=base, api_key="not-needed", max_retries=0)

        r = client.embeddings.create(model="gtr-tiny", input=texts)  # the client asks for base64
        got = np.array([d.embedding for d in r.data], dtype=np.float32)
        check(got.shape == ref.shape and np.array_equal(got, ref),
              "embeddings.create (client default: base64) equals gtr embed exactly",
              f"shape {got.shape} vs {ref.shape}; max diff {np.abs(got - ref).max() if got.shape == ref.shape else '-'}")
        check([d.index for d in r.data] == list(range(len(texts))), "indices in order")
        check(r.model == "gtr-tiny" and r.usage.prompt_tokens > len(texts)
              and r.usage.total_tokens == r.usage.prompt_tokens, "model and usage",
              f"{r.model} {r.usage}")

        r = client.embeddings.create(model="text-embedding-3-small", input=texts, encoding_format="float")
        got = np.array([d.embedding for d in r.data], dtype=np.float32)
        check(np.array_equal(got, ref), 'encoding_format="float" equals gtr embed exactly')

        r = client.embeddings.create(model="gtr-tiny", input=texts[1])
        check(len(r.data) == 1 and np.array_equal(np.array(r.data[0].embedding, dtype=np.float32), ref[1]),
              "a single string")

        r = client.embeddings.create(model="gtr-tiny", input=texts[:3], dimensions=ref.shape[1])
        check(np.array_equal(np.array([d.embedding for d in r.data], dtype=np.float32), ref[:3]),
              "dimensions equal to the model's")

        models = client.models.list()
        check([m.id for m in models.data] == ["gtr-tiny"], "models.list", [m.id for m in models.data])

        try:
            client.embeddings.create(model="gtr-tiny", input=[])
            check(False, "empty input is BadRequestError")
        except openai.BadRequestError as e:
            check(e.status_code == 400 and "empty" in str(e), "empty input is BadRequestError (400)", str(e))

        try:
            client.embeddings.create(model="gtr-tiny", input="x", dimensions=7)
            check(False, "dimensions != dim is BadRequestError")
        except openai.BadRequestError as e:
            check(e.status_code == 400 and "dimensions" in str(e), "dimensions != dim is BadRequestError (400)", str(e))

        async def many():
            ac = openai.AsyncOpenAI(base_url=base, api_key="x", max_retries=0)
            jobs = [ac.embeddings.create(model="gtr-tiny", input=texts[i:i + 5]) for i in range(0, len(texts), 5)]
            out = await asyncio.gather(*jobs)
            await ac.close()
            return out

        results = asyncio.run(many())
        got = np.concatenate([np.array([d.embedding for d in r.data], dtype=np.float32) for r in results])
        check(np.array_equal(got, ref), f"AsyncOpenAI: {len(results)} concurrent requests, identical vectors")
    except Exception as e:  # a crash is a failed test, not a silent exit
        check(False, "client session", repr(e))
    finally:
        srv.send_signal(signal.SIGTERM)
        try:
            rc = srv.wait(timeout=30)
        except subprocess.TimeoutExpired:
            srv.kill()
            rc = -9
        subprocess.run(["rm", "-rf", tmp])
    while tests_run() < 10:
        check(False, "not reached")
    check(rc == 0, "SIGTERM: the server exits 0", f"exit {rc}")
    return exit_status()


if __name__ == "__main__":
    sys.exit(main())
