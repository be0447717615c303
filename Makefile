# Quick start:  make train   (trains the default preset on the default world)
#               make test    (runs the test suite)
# Both create/update the local virtual environment .venv first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# The CPU build of torch: small and fast to install. GPU users: see README.
TORCH  ?= torch==2.13.0

.PHONY: venv browser egl test train clean gpu-wheels

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: $(BIN)/activate setup.cfg pyproject.toml
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q "$(TORCH)"
	$(BIN)/pip install -q -e ".[test]"
	touch $@

venv: $(VENV)/.installed

# The MuJoCo worlds (antmaze-*, memorymaze-*), tested for real by `make test`.
$(VENV)/.extras: $(VENV)/.installed
	$(BIN)/pip install -q -e ".[test,antmaze,memorymaze]"
	touch $@

# The HTML report test renders in headless Chromium (Debian's package). As root with apt-get
# (CI, fresh machines) it is installed here; elsewhere that one test skips and says why.
browser:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 \
	  && (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	  || echo "chromium not installed: the HTML rendering test will be skipped"; }

# MuJoCo renders headless through EGL with Mesa's software driver. As root with apt-get (CI,
# fresh machines) the Debian packages are installed here; elsewhere it says what is missing.
egl:
	@ldconfig -p | grep -q libEGL_mesa.so.0 && ldconfig -p | grep -q libOpenGL.so.0 \
	  || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 \
	  && (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	      libegl1 libegl-mesa0 libgl1-mesa-dri libopengl0 >/dev/null) \
	  || echo "Mesa EGL not installed: rendering the MuJoCo worlds (and their tests) will fail"; }

test: venv $(VENV)/.extras browser egl
	PYGLET_HEADLESS=1 LP_NUM_THREADS=0 $(BIN)/python -m pytest tests

train: venv
	PYGLET_HEADLESS=1 LP_NUM_THREADS=0 $(BIN)/director train default

# Wheels for a GPU machine without PyPI whose image has torch and Lightning
# (experiments/gpu_check.sh): what the CUDA tests need besides, for the image's Python
# (GPU_PY). Not numpy (Lightning's own dependency) nor miniworld (its textures alone are over
# what the device tool carries; no CUDA test uses it).
GPU_PY ?= 3.12
GPU_DEPS := gymnasium minigrid omegaconf matplotlib pillow imageio tensorboard pytest
gpu-wheels:
	rm -rf gpu-wheels && $(PYTHON) -m pip download -q --only-binary=:all: --python-version $(GPU_PY) \
	  --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux_2_28_x86_64 \
	  -d gpu-wheels $(GPU_DEPS)
	rm -f gpu-wheels/numpy-*
	echo $(GPU_DEPS) | tr ' ' '\n' > gpu-wheels/requirements.txt
	du -sh gpu-wheels

clean:
	rm -rf $(VENV) build *.egg-info
