# drbook — build, demo and test entry points. See README.md.
GO ?= go
BIN := bin

.PHONY: all build test demo demo-headless clean

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

# The guided tour: a 3-node lab of real agents, a total loss injected, and
# the recovery in the TUI (you type the node's name at the danger step).
demo: build
	$(BIN)/drbook demo

# The same recovery without the TUI (for terminals without a TTY, CI logs).
demo-headless: build
	$(BIN)/drbook demo --headless
