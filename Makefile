# The two commands a newcomer runs on a fresh clone: `make dev` and `make test`.
.PHONY: dev test deps nats postgres bench lint typecheck generate

# Everything in one process with embedded defaults (SQLite under ./.hookstream/, a local nats-server).
dev: deps nats
	npm run dev

# The whole test suite: schema gates, type check, lint, unit, integration (SQLite and PostgreSQL), e2e.
test: deps nats postgres
	npm test

deps:
	@bash scripts/ensure-deps.sh

nats:
	@bash scripts/ensure-nats.sh

postgres:
	@bash scripts/ensure-postgres.sh

bench: deps nats
	npm run bench

typecheck: deps
	npm run typecheck

lint: deps
	npm run lint

generate: deps
	npm run generate
