"""Registers MiniGPT-v2 with transformers' Auto classes, at the moment transformers loads them.

``import minigptv2`` must stay cheap, and transformers' auto modules take seconds to import (they
pull in torch), so importing the package imports nothing from transformers. Instead a finder on
``sys.meta_path`` waits for each auto module to be imported by whoever needs it, lets it run, and
then registers our class with it: ``AutoConfig`` learns ``model_type: "minigptv2"``,
``AutoModelForImageTextToText`` and ``AutoProcessor`` learn our model and processor. Auto modules
already imported are registered at once. No weights are loaded and nothing is started.

The hooks can fire while our own model code is importing transformers, so the modules they import
(``hf_config``, ``hf_model``, ``hf_processor``) import only transformers and the light modules of
the package (config, processor, prompts, tokenizer) at the top, and the model code when used.

A registration that fails (a transformers release that changed these APIs) warns instead of
breaking the caller's import of transformers; ``tests/integrations/test_hf.py`` fails loudly then.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable
    from importlib.machinery import ModuleSpec
    from types import ModuleType


def _register_config(auto: ModuleType) -> None:
    from minigptv2.integrations.hf_config import MiniGPTv2HFConfig

    auto.AutoConfig.register(MiniGPTv2HFConfig.model_type, MiniGPTv2HFConfig, exist_ok=True)


def _register_model(auto: ModuleType) -> None:
    from minigptv2.integrations.hf_config import MiniGPTv2HFConfig
    from minigptv2.integrations.hf_model import MiniGPTv2ForConditionalGeneration

    auto.AutoModelForImageTextToText.register(
        MiniGPTv2HFConfig, MiniGPTv2ForConditionalGeneration, exist_ok=True
    )


def _register_processor(auto: ModuleType) -> None:
    from minigptv2.integrations.hf_config import MiniGPTv2HFConfig
    from minigptv2.integrations.hf_processor import MiniGPTv2Processor

    auto.AutoProcessor.register(MiniGPTv2HFConfig, MiniGPTv2Processor, exist_ok=True)


# Each transformers auto module, and what registers us with it once it has been imported.
HOOKS: dict[str, Callable[[ModuleType], None]] = {
    "transformers.models.auto.configuration_auto": _register_config,
    "transformers.models.auto.modeling_auto": _register_model,
    "transformers.models.auto.processing_auto": _register_processor,
}
_pending: dict[str, Callable[[ModuleType], None]] = dict(HOOKS)


def _run(name: str, module: ModuleType) -> None:
    hook = _pending.pop(name, None)
    if hook is None:
        return
    try:
        hook(module)
    except Exception as error:  # never break the caller's `import transformers`
        import warnings

        warnings.warn(
            f"minigptv2 could not register with {name} ({type(error).__name__}: {error}); "
            "transformers' Auto classes and pipeline will not open minigptv2 folders. This "
            "transformers version is not the one minigptv2 pins (see pyproject.toml).",
            RuntimeWarning,
            stacklevel=2,
        )


class _RegisterAfterImport:
    """A ``sys.meta_path`` finder (importlib.abc.MetaPathFinder's protocol; the base class is not
    imported, to keep ``import minigptv2`` fast) that finds nothing itself: for the auto modules
    it asks the other finders, then makes the module's loader register us right after the module
    has run."""

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> ModuleSpec | None:
        if fullname not in _pending:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                break
        else:
            return None
        loader = spec.loader
        if loader is None or not hasattr(loader, "exec_module"):
            return spec
        run_module = loader.exec_module

        def exec_module(module: ModuleType) -> None:
            run_module(module)
            _run(fullname, module)

        # A file finder makes one loader per module, so this touches this module only.
        loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


def register_when_imported() -> None:
    """Register now with the auto modules already imported, and later with the others."""
    for name in list(_pending):
        module = sys.modules.get(name)
        if module is not None and getattr(module, "__spec__", None) is not None:
            _run(name, module)
    if _pending and not any(isinstance(f, _RegisterAfterImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _RegisterAfterImport())
