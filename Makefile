# sandboxd: the two commands of the README's Quick start are `make run` and
# `make test`. Both set the machine up first (scripts/setup-host.sh).

GO      ?= go
BIN     := bin
VERSION := $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)
DEV     := $(CURDIR)/.dev
SOCKET  ?= /run/sandboxd/sandboxd.sock

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

## run: set up, build, and run the daemon in the foreground with development settings
run: setup build
	@mkdir -p $(dir $(SOCKET))
	@echo "sandboxd: serving on $(SOCKET) (Ctrl-C stops it; sandboxes keep running). In another shell, try:"
	@echo "  bin/sandboxctl create --project demo --image sandboxd-test/busybox:latest"
	@echo "  bin/sandboxctl exec ID -- sh -c 'echo hello from \$$(hostname)'"
	@echo "  bin/sandboxctl ps"
	$(BIN)/sandboxd serve --socket $(SOCKET) --allow-image 'sandboxd-test/*' --log-format text

clean:
	rm -rf $(BIN)
