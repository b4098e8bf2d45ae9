"""Bare serving baseline: a minimal FastAPI app serving the same model, run by uvicorn.

``python -m bench.bare_server --model-path P --port N [--threads 1]``

The model is rebuilt with ``lakekit.modelrec.load_model`` (the record's ``torch.export``
program: the very module the platform's model server runs), so the forward passes are
identical and the comparison isolates the serving stack. Decoding is minimal: base64 of 784
raw bytes, no format sniffing or validation beyond the length. The answer carries the same
fields as the model server's (prediction, confidence, the 10 probabilities). Same worker
settings as ``ai_platform.serving.model_server``: one uvicorn worker, no access log, torch
threads 1, a plain ``def`` route (FastAPI runs it in its thread pool, off the event loop).
"""

from __future__ import annotations

import argparse
import base64

import numpy as np
import torch
import uvicorn
from fastapi import FastAPI, HTTPException
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from lakekit.modelrec import load_model


class Body(BaseModel):
    image: str | None = None
    images: list[str] | None = None


def create_app(model_path: str) -> FastAPI:
    loaded = load_model(model_path)
    module = loaded.module
    spec = loaded.input_spec
    scale, mean, std = float(spec["scale"]), float(spec["mean"]), float(spec["std"])
    app = FastAPI()

    def forward(raw: list[bytes]) -> list[dict[str, object]]:
        if any(len(r) != 784 for r in raw):
            raise HTTPException(400, "each image must be 784 raw bytes")
        pixels = np.frombuffer(b"".join(raw), np.uint8).reshape(-1, 1, 28, 28)
        x = torch.from_numpy(pixels.astype(np.float32)).mul_(scale).sub_(mean).div_(std)
        with torch.inference_mode():
            probs = torch.softmax(module(x), dim=1).numpy()
        best = probs.argmax(axis=1)
        return [
            {"prediction": int(b), "confidence": float(p[b]), "probabilities": p.tolist()}
            for p, b in zip(probs, best, strict=True)
        ]

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/predict")
    def predict(body: Body) -> JSONResponse:
        if body.image is not None:
            return JSONResponse(forward([base64.b64decode(body.image)])[0])
        if body.images:
            raw = [base64.b64decode(image) for image in body.images]
            return JSONResponse({"predictions": forward(raw)})
        raise HTTPException(400, 'give "image" or "images"')

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-path", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    app = create_app(args.model_path)
    uvicorn.run(app, host=args.host, port=args.port, log_level="info", access_log=False)


if __name__ == "__main__":
    main()
