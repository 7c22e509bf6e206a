# drbook — build, demo and test entry points. See README.md.
GO ?= go
BIN := bin

.PHONY: all build test check lint-runbooks clean

all: build

build:
	$(GO) build -o $(BIN)/drbook ./cmd/drbook
	$(GO) build -o $(BIN)/drbook-agent ./cmd/drbook-agent

# Everything CI runs: installs what the tests need (openssh-server, a test
# user, a private sshd on 127.0.0.1, staticcheck), then vet, staticcheck and
# the whole test suite with the race detector off (2 cores).
test:
	bash .ci/test.sh

clean:
	rm -rf $(BIN)
