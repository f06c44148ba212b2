# sandboxd: the two commands of the README's Quick start are `make run` and
# `make test`. Both set the machine up first (scripts/setup-host.sh).

GO      ?= go
BIN     := bin
VERSION := $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)
DEV     := $(CURDIR)/.dev
SOCKET  ?= $(DEV)/sandboxd.sock

export SANDBOXD_DEV_DIR := $(DEV)

.PHONY: all setup build test vet fmt-check run clean

all: build

## setup: install and start Docker and PostgreSQL, build the sandbox image
setup:
	@bash scripts/setup-host.sh

## build: build sandboxd and sandboxctl into bin/
build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN)/ ./cmd/sandboxd ./cmd/sandboxctl

vet:
	$(GO) vet ./...

fmt-check:
	@out=$$(gofmt -l $$(find . -name '*.go' -not -path './.dev/*')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

## test: set up, then vet, check formatting and run every test with the race detector
test: setup vet fmt-check
	$(GO) test -race -count=1 ./...

## run: set up, build, migrate and run the daemon in the foreground
run: setup build
	$(BIN)/sandboxd migrate up
	@echo "sandboxd: schema migrated; the daemon itself arrives with the API (see docs/)"

clean:
	rm -rf $(BIN)
