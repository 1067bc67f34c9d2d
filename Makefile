# The two commands: `make run` starts Kefu on embedded defaults; `make test` runs every check.
.PHONY: run test bench

run:
	@scripts/bootstrap
	.venv/bin/kefu run

test:
	@scripts/bootstrap --dev --sam --browser
	@scripts/test

bench:
	@scripts/bootstrap --dev
	.venv/bin/python -m bench.report --run all
