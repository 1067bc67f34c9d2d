"""OpenAIEmbedder over a real AsyncOpenAI client whose HTTP transport is a MockTransport."""

from __future__ import annotations

import json

import httpx
import numpy as np
import pytest
from openai import AsyncOpenAI

from kefu_memory import EmbedderError, OpenAIEmbedder


def client_answering(dim: int, seen: list[dict[str, object]]) -> AsyncOpenAI:
    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        seen.append(body)
        data = [
            {"object": "embedding", "index": i, "embedding": [float(i + 1)] + [1.0] * (dim - 1)}
            for i in range(len(body["input"]))
        ][::-1]  # out of order on purpose
        return httpx.Response(200, json={"object": "list", "data": data, "model": body["model"],
                                         "usage": {"prompt_tokens": 1, "total_tokens": 1}})

    return AsyncOpenAI(api_key="k", base_url="http://embeddings.local/v1",
                       http_client=httpx.AsyncClient(transport=httpx.MockTransport(handler)))


async def test_batches_orders_and_normalises() -> None:
    # GIVEN an endpoint returning 4-dimensional vectors, and a batch size of 2
    seen: list[dict[str, object]] = []
    embedder = OpenAIEmbedder(client_answering(4, seen), model="bge-m3", dim=4, batch_size=2,
                              send_dimensions=True)
    # WHEN three texts are embedded
    matrix = await embedder.embed(["a", "b", ""])
    # THEN two requests were made, rows follow the input order and are unit length
    assert [len(s["input"]) for s in seen] == [2, 1]  # type: ignore[arg-type]
    assert seen[0]["dimensions"] == 4 and seen[0]["model"] == "bge-m3"
    assert len(matrix) == 3 and all(len(row) == 4 for row in matrix)
    assert np.allclose(np.linalg.norm(matrix, axis=1), 1.0)
    assert matrix[1][0] > matrix[0][0]  # index 1 had the larger first component
    assert embedder.name == "openai:bge-m3" and not embedder.lexical


async def test_wrong_dimension_is_an_embedder_error() -> None:
    # GIVEN an endpoint answering 3 dimensions to an embedder configured for 8
    embedder = OpenAIEmbedder(client_answering(3, []), dim=8)
    # WHEN / THEN
    with pytest.raises(EmbedderError):
        await embedder.embed(["x"])
