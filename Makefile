# strata — see README.md. Every target works on a fresh Debian bookworm machine after `make deps`.
SHELL := /bin/bash
GO ?= go
STRATA_CACHE ?= $(HOME)/.cache/strata
export STRATA_CACHE
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)

.PHONY: build deps test test-e2e test-image vet fuzz schema drill

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/strata ./cmd/strata

# Debian packages and the kernel cache. Idempotent.
deps:
	./scripts/deps.sh

# The Debian bookworm base-system image the restore tests install (cached).
test-image: deps
	./scripts/build-test-image.sh

vet:
	$(GO) vet ./...
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$unformatted" ]; then echo "gofmt: $$unformatted"; exit 1; fi

# Every test this machine can run (the README's test command).
test: deps test-image vet build
	$(GO) test -timeout 80m ./...
	$(MAKE) fuzz

# Every end-to-end drill (restore in QEMU, boot the result, check it).
test-e2e: deps test-image build
	STRATA_DRILLS=all $(GO) test -timeout 180m -run TestDrill -v ./qemu-tests/

# The main job on the built-in example: rehearse the BIOS example's restore in QEMU.
drill: deps test-image build
	./bin/strata drill examples/bios-msdos.yaml

# Bounded fuzzing of the profile loader. Minimising each new interesting
# input is bounded too (100 runs, not 60 s): unbounded, the fuzzer spent most
# of its 30 s minimising, and a CI run failed with "fuzzing process hung or
# terminated unexpectedly while minimizing" on an input that loads at once.
fuzz:
	$(GO) test -run '^$$' -fuzz FuzzLoad -fuzztime 30s -fuzzminimizetime 100x ./profile/

# Regenerate docs/schema.json from the profile types.
schema: build
	./bin/strata schema > docs/schema.json
