# sandboxd: the two commands of the README's Quick start are `make run` and
# `make test`. Both set the machine up first (scripts/setup-host.sh).

GO      ?= go
BIN     := bin
VERSION := $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)
DEV     := $(CURDIR)/.dev
SOCKET  ?= /run/sandboxd/sandboxd.sock

export SANDBOXD_DEV_DIR := $(DEV)

.PHONY: all setup build bench load fault test vet fmt-check units install run clean

all: build

## setup: install and start Docker and PostgreSQL, build the sandbox image
setup:
	@bash scripts/setup-host.sh

## build: build sandboxd, sandboxctl and sandboxd-bench into bin/
build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN)/ ./cmd/sandboxd ./cmd/sandboxctl ./cmd/sandboxd-bench

## load: 64 clients at the quota boundary for two minutes (LOAD_DURATION=30s for less)
load: setup build
	@mkdir -p $(DEV)
	$(BIN)/sandboxd-bench --daemon $(BIN)/sandboxd --out $(DEV)/load.json --only load $(if $(LOAD_DURATION),--load-duration $(LOAD_DURATION))

## fault: the fault suite at full size: 64 clients, 10 s outages of sandboxd, dockerd and PostgreSQL (a short form runs in make test)
fault: setup
	@bash -o pipefail -c "SANDBOXD_FAULT_LONG=1 $(GO) test -race -count=1 -v -timeout 20m \
		-run 'TestFault|TestAbuseInside|TestDockerRestart|TestDatabaseOutage|TestCrashDuringCreate' ./daemon/ \
		| grep -E '^(=== RUN|\s*--- |PASS|FAIL|ok)|load of |not within|does not match|error not explained' \
		| awk -f scripts/fault-table.awk"

## bench: measure sandboxd beside the raw Docker API and CLI (QUICK=1: about two minutes)
bench: setup build
	@mkdir -p $(DEV)
	$(BIN)/sandboxd-bench --daemon $(BIN)/sandboxd --out $(DEV)/bench.json $(if $(QUICK),--quick)

vet:
	$(GO) vet ./...

fmt-check:
	@out=$$(gofmt -l $$(find . -name '*.go' -not -path './.dev/*')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

## test: set up, then vet, check formatting, check the systemd units, and run every test with the race detector
test: setup vet fmt-check units
	$(GO) test -race -count=1 ./...

## units: systemd-analyze verify and security (exposure at most 2.0) on the units
units: build
	@bash scripts/check-units.sh $(BIN)

PREFIX  ?= /usr/local
UNITDIR ?= $(PREFIX)/lib/systemd/system
SYSUSERSDIR ?= $(PREFIX)/lib/sysusers.d

## install: install the binaries, units, sysusers file and example settings
install: build
	install -D -m 0755 $(BIN)/sandboxd $(DESTDIR)$(PREFIX)/bin/sandboxd
	install -D -m 0755 $(BIN)/sandboxctl $(DESTDIR)$(PREFIX)/bin/sandboxctl
	install -d $(DESTDIR)$(UNITDIR) $(DESTDIR)$(PREFIX)/share/doc/sandboxd
	sed 's|/usr/local/|$(PREFIX)/|g' systemd/sandboxd.service > $(DESTDIR)$(UNITDIR)/sandboxd.service
	install -m 0644 README.md docs/*.md $(DESTDIR)$(PREFIX)/share/doc/sandboxd/
	install -D -m 0644 systemd/sandboxd.socket $(DESTDIR)$(UNITDIR)/sandboxd.socket
	install -D -m 0644 systemd/sandboxd.sysusers $(DESTDIR)$(SYSUSERSDIR)/sandboxd.conf
	install -D -m 0644 systemd/sandboxd.env.example $(DESTDIR)/etc/sandboxd/sandboxd.env.example
	@echo
	@echo "Installed. To run sandboxd as a service:"
	@echo "  systemd-sysusers                                   # creates the user sandboxd and the group sandboxd-clients"
	@echo "  runuser -u postgres -- createuser sandboxd          # the database: peer authentication as user sandboxd"
	@echo "  runuser -u postgres -- createdb -O sandboxd sandboxd # (or ALTER DATABASE sandboxd OWNER TO sandboxd if it exists)"
	@echo "  cp /etc/sandboxd/sandboxd.env.example /etc/sandboxd/sandboxd.env   # then set SANDBOXD_ALLOW_IMAGE"
	@echo "  systemctl daemon-reload"
	@echo "  systemctl enable --now sandboxd.socket sandboxd.service"

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
