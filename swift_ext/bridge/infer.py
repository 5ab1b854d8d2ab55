"""ms-swift's inference engines as a sampler for ``swift-ext filter`` (the only place that imports them).

:class:`EngineSampler` wraps ``swift.infer_engine.TransformersEngine`` (CPU or one GPU) or
``swift.infer_engine.VllmEngine`` (GPU nodes; tensor and data parallel through vLLM's own arguments). It
draws ``n`` completions per prompt with a seed of its own per prompt, so a prompt's samples do not depend
on which other prompts run with it (a resumed run draws what an uninterrupted one would have):

* transformers: one ``generate`` per prompt (``n`` sequences), the torch RNG seeded from the prompt's seed;
* vLLM (``use_async_engine``): every prompt of a chunk submitted at once through ``infer_async`` with its
  own ``RequestConfig(seed=...)`` (vLLM batches them continuously). Tensor parallel runs in this process;
  for data parallel, serve the model with ``swift deploy --infer_backend vllm --vllm_data_parallel_size N``
  and sample from the endpoint instead.

Importing this module imports nothing from ms-swift; :class:`EngineSampler` does when built.
"""

from __future__ import annotations

import asyncio
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from ..errors import BridgeError

BACKENDS = ("transformers", "vllm")

#: (key, messages, images, seed) of one prompt
Item = Tuple[str, List[Dict[str, Any]], List[Any], int]


class EngineSampler:
    """``sample(items, n, temperature, max_tokens, top_p, on_done)`` over an in-process ms-swift engine."""

    def __init__(self, model: str, backend: str = "transformers", *, model_type: Optional[str] = None,
                 template: Optional[str] = None, torch_dtype: Optional[str] = None,
                 tensor_parallel_size: int = 1, gpu_memory_utilization: float = 0.9,
                 max_model_len: Optional[int] = None, engine_kwargs: Optional[Dict[str, Any]] = None):
        if backend not in BACKENDS:
            raise BridgeError(f"unknown inference backend {backend!r}; choose from {', '.join(BACKENDS)}")
        self.backend = backend
        self.model = model
        kwargs: Dict[str, Any] = {"model_type": model_type, "template_type": template, **(engine_kwargs or {})}
        if torch_dtype:
            import torch

            kwargs["torch_dtype"] = getattr(torch, torch_dtype)
        if backend == "transformers":
            from swift.infer_engine import TransformersEngine

            self.engine = TransformersEngine(model, **kwargs)
        else:  # pragma: no cover - needs a GPU node with vLLM
            from swift.infer_engine import VllmEngine

            kwargs.update(tensor_parallel_size=tensor_parallel_size, gpu_memory_utilization=gpu_memory_utilization,
                          max_model_len=max_model_len, use_async_engine=True)
            self.engine = VllmEngine(model, **{k: v for k, v in kwargs.items() if v is not None})

    @property
    def label(self) -> str:
        return f"{self.backend}:{self.model}"

    def _request(self, messages, images):
        from swift.infer_engine import InferRequest

        return InferRequest(messages=messages, images=list(images or []))

    def _config(self, n: int, temperature: float, max_tokens: Optional[int], top_p: Optional[float],
                seed: Optional[int]):
        from swift.infer_engine import RequestConfig

        return RequestConfig(n=n, temperature=temperature, max_tokens=max_tokens, top_p=top_p, seed=seed)

    def sample(self, items: Sequence[Item], n: int, temperature: float, max_tokens: Optional[int],
               top_p: Optional[float], on_done: Callable[[str, List[str]], None]) -> None:
        """Draw ``n`` completions for each item; ``on_done(key, completions)`` as each prompt finishes."""
        if self.backend == "transformers":
            from transformers import set_seed

            greedy = not temperature  # generate() refuses n sequences without sampling: one, n times (identical)
            for key, messages, images, seed in items:
                set_seed(seed)
                m = 1 if greedy else n
                resp = self.engine.infer([self._request(messages, images)],
                                         self._config(m, temperature, max_tokens, top_p, seed), use_tqdm=False)[0]
                on_done(key, _texts(resp, m, key) * (n // m))
            return
        asyncio.run(self._sample_async(items, n, temperature, max_tokens, top_p, on_done))  # pragma: no cover

    async def _sample_async(self, items, n, temperature, max_tokens, top_p, on_done):  # pragma: no cover
        async def one(item):
            key, messages, images, seed = item
            resp = await self.engine.infer_async(self._request(messages, images),
                                                 self._config(n, temperature, max_tokens, top_p, seed))
            on_done(key, _texts(resp, n, key))

        await asyncio.gather(*(one(it) for it in items))


def _texts(resp: Any, n: int, key: str) -> List[str]:
    choices = sorted(resp.choices, key=lambda c: c.index)
    if len(choices) != n:
        raise BridgeError(f"the engine returned {len(choices)} completions for prompt {key}, asked for {n}")
    return [c.message.content if isinstance(c.message.content, str) else str(c.message.content or "")
            for c in choices]


__all__ = ["EngineSampler", "BACKENDS"]
