# Two commands do all setup on a fresh Debian machine with Python 3.11:
#   make demo   - venv, install, then both cameras on bundled sample media, alerts printed
#   make test   - lint and the test suite
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: install demo test lint bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test,bench]'
	# the naive baseline of `make bench` uses face_recognition's API; its metadata pulls the
	# source dlib, so install it without dependencies (dlib-bin provides dlib)
	$(PY) -m pip install -q --no-deps face-recognition==1.3.0
	touch $(STAMP)

demo: install
	$(VENV)/bin/python -m demo.run

lint: install
	$(VENV)/bin/ruff check .

test: lint
	$(VENV)/bin/pytest -q

bench: install
	OMP_NUM_THREADS=1 $(PY) -m bench.run

clean:
	rm -rf $(VENV) .demo-state
