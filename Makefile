# Two commands do all setup on a fresh Debian machine with Python 3.11:
#   make demo   - venv, install, then the box on bundled sample media and the web console (URL and a demo
#                 login printed) until Ctrl-C; make demo-ci: the same end to end, scripted, and it exits
#   make test   - lint and the test suite
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: install demo demo-ci test lint bench clean lock wheels

install: $(STAMP)

# Exactly the locked versions, hash-checked (requirements.lock: what was tested is what ships), then
# the project itself without resolving anything again.
$(STAMP): pyproject.toml requirements.lock requirements-nodeps.lock
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --require-hashes -r requirements.lock
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	# face-recognition (below, bench only) names the source dlib, which dlib-bin provides: on a venv being
	# brought up to a new lock that is the one complaint allowed
	out=$$($(PY) -m pip check) || [ "$$out" = "face-recognition 1.3.0 requires dlib, which is not installed." ]
	# the naive baseline of `make bench` uses face_recognition's API; its metadata pulls the
	# source dlib, so install it without dependencies (dlib-bin provides dlib)
	$(PY) -m pip install -q --no-deps --require-hashes -r requirements-nodeps.lock
	touch $(STAMP)

# Upgrade the dependencies on purpose: re-resolve pyproject.toml, show what changed, then `make test`.
lock:
	$(PYTHON) -m venv .lock-tools && .lock-tools/bin/pip install -q pip-tools
	.lock-tools/bin/pip-compile -q --upgrade --generate-hashes --allow-unsafe --strip-extras \
		--extra test --extra bench -o requirements.lock pyproject.toml
	sed -i '/^--extra-index-url/d; /^--find-links/d' requirements.lock
	git --no-pager diff --stat requirements.lock; git --no-pager diff -U0 requirements.lock | grep '^[-+][a-z]' || true

# The wheels of a firmware bundle: the locked closure and the project, nothing resolved that day.
wheels: install
	rm -rf build/wheels && mkdir -p build/wheels
	$(PY) -m pip download -q --require-hashes --only-binary :all: -r requirements.lock -d build/wheels
	$(PY) -m pip wheel -q --no-deps --no-build-isolation -w build/wheels .
	@echo "edge firmware build --wheel build/wheels/*.whl ..."

demo: install
	$(VENV)/bin/python -m demo.run

demo-ci: install
	$(VENV)/bin/python -m demo.run --quick

lint: install
	$(VENV)/bin/ruff check .

test: lint
	$(VENV)/bin/pytest -q

bench: install
	OMP_NUM_THREADS=1 $(PY) -m bench.run

clean:
	rm -rf $(VENV) .demo-state .lock-tools build/wheels
