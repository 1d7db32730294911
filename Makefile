# Every target sets itself up: on a fresh machine `make demo` and `make test` need only python3 (3.11+).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PROMPT ?= 한 마리 고양이가 서울의 밤거리를 걷는다

.PHONY: install demo test test-fast lint bench bench-load ui clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

## The main job, offline: no key, no network. Prints where the video is.
demo: $(STAMP)
	$(BIN)/sora-extend run "$(PROMPT)" --segments 3 --seconds 4

## The test suite (starts its own Prefect and S3 test servers on loopback), in two processes: a module's tests
## share their servers, so modules, not tests, are shared out.
test: $(STAMP)
	$(BIN)/python -m pytest -n 2 --dist loadfile

## The inner loop: domain, media, emulators and the CLI's checks; no Prefect server, no whole flows (`slow`).
test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not slow"

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

## Benchmarks: merge, frame extraction, preview render; chain vs keyframes; the quality gate; ComfyUI servers 1/2/4;
## the library over 5 000 jobs; a run's own overhead around the provider's work (tables of ratios).
bench: $(STAMP)
	$(BIN)/python -m benchmarks.overhead_bench
	$(BIN)/python -m benchmarks.media_bench
	$(BIN)/python -m benchmarks.continuity_bench
	$(BIN)/python -m benchmarks.quality_bench
	$(BIN)/python -m benchmarks.comfyui_bench
	$(BIN)/python -m benchmarks.library_bench

## Load through the production stack (PostgreSQL, auth, S3, workers): videos per worker, 1 vs 2 workers (~9 min).
bench-load: $(STAMP)
	$(BIN)/python -m benchmarks.load_bench

## Prefect UI on http://127.0.0.1:4200: the local server runs use, started in the background if it is not running
## (`.venv/bin/sora-extend prefect stop` stops it).
ui: $(STAMP)
	$(BIN)/sora-extend prefect start

clean:
	rm -rf $(VENV) outputs .pytest_cache .ruff_cache
