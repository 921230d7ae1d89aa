# The README's commands. Each target sets up what it needs itself (scripts/bootstrap):
# apt packages, the .venv, the server. Run as root on Debian 12 / Ubuntu 22.04+.
SHELL := /bin/bash
VENV := .venv
INVOKE := $(VENV)/bin/invoke
DEMO ?= demo

.PHONY: demo demo-down test bench bootstrap

bootstrap:
	@MAKE_TARGET=$(firstword $(MAKECMDGOALS)) scripts/bootstrap

## make demo: a sandbox host with the example Flask app deployed to it; prints its URL
demo: bootstrap
	$(INVOKE) sandbox.up --name $(DEMO)
	$(INVOKE) deploy --host sandbox-$(DEMO) --app examples/flask

## make demo-down: removes the demo sandbox host
demo-down: bootstrap
	$(INVOKE) sandbox.down --name $(DEMO)

## make test: the whole test suite, integration tests on sandbox hosts included
test: bootstrap
	$(VENV)/bin/pytest $(PYTEST_ARGS)

## make bench: pronghorn against gunicorn, granian and waitress, then deploy timings on a sandbox
## host (see bench/README.md; BENCH_ARGS="--only hello" runs a part, without the deploy timings)
BENCH_ARGS ?= --deploy
bench: bootstrap
	$(VENV)/bin/python bench/run.py $(BENCH_ARGS)
