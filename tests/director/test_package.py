"""The package face: `from director import DirectorModule, Agent, load_config`, imported lazily."""
from __future__ import annotations

import subprocess
import sys

import pytest


def test_public_names_import_lazily_and_work():
    code = ("import sys, director\n"
            "assert 'director.agent' not in sys.modules and 'torch' not in sys.modules\n"
            "from director import DirectorModule, Agent, load_config, RunCheckpoint\n"
            "from director.module import DirectorModule as M\n"
            "assert DirectorModule is M and issubclass(DirectorModule, __import__('lightning').LightningModule)\n"
            "cfg = load_config('debug', ['env.world=maze-s'])\n"
            "module = DirectorModule(cfg)\n"
            "assert isinstance(module.agent, Agent)\n"
            "print('ok')\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr


def test_unknown_public_name_is_an_attribute_error():
    import director
    with pytest.raises(AttributeError, match="Dreamer"):
        director.Dreamer  # noqa: B018
    assert {"DirectorModule", "Agent", "load_config"} <= set(dir(director))
