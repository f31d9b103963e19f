# Lapis: every command a developer or CI needs. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help
NPM_STAMP := node_modules/.package-lock.json

.PHONY: help setup proto build lint format test bench up down status kube-up kube-down images k8s clean

help: ## this list
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

$(NPM_STAMP): package.json package-lock.json proto/package.json services/*/package.json tools/*/package.json
	npm ci --no-audit --no-fund
	@touch $@

setup: $(NPM_STAMP) ## install npm dependencies (Debian packages come on demand, through tools/testenv)

proto: setup ## generate TypeScript from the protobuf contracts
	npm run proto

build: setup ## generate and compile everything
	npm run build

lint: build ## Biome (format, lint, pure domains), buf lint and format, buf breaking against main, strict type checks
	npx biome ci .
	npm run lint -w proto
	cd proto && npx buf breaking --against '../.git#branch=main,subdir=proto'

format: setup ## format the tree and apply Biome's safe fixes
	npx biome check --write .

test: build ## every test, against real NATS, Docker, registries, Slurm, Kubernetes and the images
	node tools/testenv/dist/src/cli.js prepare --images
	LAPIS_REQUIRE_IMAGES=1 npx mocha

bench: build ## benchmarks (not tests): tables on stdout, figures in bench/results/
	npm run bench --workspaces --if-present

up: build ## run Lapis on this machine: the whole mesh, an example deployment, a trace viewer
	node tools/mesh/dist/src/cli.js up

down: ## stop what make up started and remove what it made
	@node tools/mesh/dist/src/cli.js down

status: ## is Lapis running, and where
	@node tools/mesh/dist/src/cli.js status

kube-up: build ## Lapis on a real one-node Kubernetes cluster here: helm install, the example deployed through it
	node tools/mesh/dist/src/kube/cli.js up

kube-down: ## stop what make kube-up started: the cluster and all in it; the host is put back
	@node tools/mesh/dist/src/kube/cli.js down

images: build ## container images of the five services, built locally (nothing pulled)
	images/build.sh

k8s: build ## render k8s/ (plain manifests) from the Helm chart
	node tools/chart-test/dist/src/render.js

clean: ## remove build output (not node_modules)
	rm -rf proto/gen proto/dist services/*/dist tools/*/dist
