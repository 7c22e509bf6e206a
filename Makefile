# drbook — build, demo and test entry points. See README.md and docs/deploy.md.
GO ?= go
BIN := bin
DIST := dist

# Version stamping (drbook version, drbook-agent version): the semantic
# version from the nearest v* tag (git describe), the full commit (with
# -dirty when the tree has uncommitted changes) and the build date (UTC; set
# SOURCE_DATE_EPOCH for a reproducible date).
VERSION ?= $(shell git describe --tags --match 'v[0-9]*' --dirty 2>/dev/null || echo v0.0.0-dev)
COMMIT ?= $(shell c=$$(git rev-parse HEAD 2>/dev/null) && { git diff --quiet HEAD 2>/dev/null && echo $$c || echo $$c-dirty; })
DATE ?= $(shell if [ -n "$$SOURCE_DATE_EPOCH" ]; then date -u -d "@$$SOURCE_DATE_EPOCH" +%Y-%m-%dT%H:%M:%SZ; else date -u +%Y-%m-%dT%H:%M:%SZ; fi)
PKG_BI := github.com/drbook/drbook/internal/buildinfo
LDFLAGS := -X $(PKG_BI).version=$(VERSION) -X $(PKG_BI).commit=$(COMMIT) -X $(PKG_BI).date=$(DATE)

# Release builds: no dynamic libraries. drbook needs cgo (go-sqlite3), so it
# is linked statically against glibc (netgo/osusergo keep NSS out, the
# sqlite extension loader is left out); arm64 needs a cross gcc
# (Debian: apt-get install gcc-aarch64-linux-gnu). drbook-agent has no cgo.
RELEASE_TAGS := netgo,osusergo,sqlite_omit_load_extension
RELEASE_LDFLAGS := -s -w $(LDFLAGS)
CC_arm64 ?= aarch64-linux-gnu-gcc
CC_amd64 ?= gcc
ARCHES ?= amd64 arm64

.PHONY: all build test demo demo-headless clean release

all: build

build:
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN)/drbook ./cmd/drbook
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN)/drbook-agent ./cmd/drbook-agent

# Static-enough Linux binaries for amd64 and arm64 with SHA256SUMS, in
# $(DIST)/: drbook-VERSION-linux-ARCH and drbook-agent-VERSION-linux-ARCH.
release:
	rm -rf $(DIST) && mkdir -p $(DIST)
	@for arch in $(ARCHES); do \
		case $$arch in amd64) cc="$(CC_amd64)";; arm64) cc="$(CC_arm64)";; *) echo "release: no C compiler set for $$arch" >&2; exit 1;; esac; \
		if ! command -v "$$cc" >/dev/null 2>&1; then \
			echo "release: $$cc not found (cross compiler for linux/$$arch: apt-get install gcc-aarch64-linux-gnu)" >&2; exit 1; \
		fi; \
		echo "== drbook linux/$$arch (cgo, static, CC=$$cc)"; \
		CGO_ENABLED=1 CC="$$cc" GOOS=linux GOARCH=$$arch $(GO) build -trimpath -tags '$(RELEASE_TAGS)' \
			-ldflags '$(RELEASE_LDFLAGS) -linkmode external -extldflags "-static"' \
			-o $(DIST)/drbook-$(VERSION)-linux-$$arch ./cmd/drbook || exit 1; \
		echo "== drbook-agent linux/$$arch (CGO_ENABLED=0)"; \
		CGO_ENABLED=0 GOOS=linux GOARCH=$$arch $(GO) build -trimpath -tags netgo,osusergo \
			-ldflags '$(RELEASE_LDFLAGS)' -o $(DIST)/drbook-agent-$(VERSION)-linux-$$arch ./cmd/drbook-agent || exit 1; \
	done
	cd $(DIST) && sha256sum drbook-* > SHA256SUMS && cat SHA256SUMS

# Everything CI runs: installs what the tests need (openssh-server, a test
# user, a private sshd on 127.0.0.1, staticcheck), then vet, staticcheck and
# the whole test suite with the race detector off (2 cores).
test:
	bash .ci/test.sh

clean:
	rm -rf $(BIN)

# The guided tour: a 3-node lab of real agents, a total loss injected, and
# the recovery in the TUI (you type the node's name at the danger step).
demo: build
	$(BIN)/drbook demo

# The same recovery without the TUI (for terminals without a TTY, CI logs).
demo-headless: build
	$(BIN)/drbook demo --headless
