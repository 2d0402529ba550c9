"""Fixtures several test files share: tiny checkpoints (built once per session by transformers'
save_pretrained) and the demo model's folder."""

from __future__ import annotations

import pytest

from tests.checkpoints import make_tiny_videomae, make_tiny_vivit


@pytest.fixture(scope="session")
def vivit_dir(tmp_path_factory):
    """A tiny random ViViT classifier saved by transformers (safetensors)."""
    return make_tiny_vivit(tmp_path_factory.mktemp("vivit") / "ckpt")


@pytest.fixture(scope="session")
def videomae_dir(tmp_path_factory):
    """A tiny random VideoMAE classifier saved by transformers (safetensors)."""
    return make_tiny_videomae(tmp_path_factory.mktemp("videomae") / "ckpt")
