# drbook — build, demo and test entry points. See README.md.
GO ?= go
BIN := bin

.PHONY: all build test demo clean

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

# A sample runbook on three local "nodes" (directories under /tmp), then its
# verified record. Needs no SSH server.
demo: build
	mkdir -p /tmp/drbook-demo/node1 /tmp/drbook-demo/node2 /tmp/drbook-demo/node3
	DRBOOK_DEMO_PASSPHRASE=demo-passphrase-1234 $(BIN)/drbook run testdata/runbooks/valid/five-steps.yaml \
		-i testdata/inventories/local.yaml --answers testdata/answers/five-steps.yaml \
		--headless --yes --db /tmp/drbook-demo/drbook.db
	$(BIN)/drbook replay --db /tmp/drbook-demo/drbook.db --verify \
		$$($(BIN)/drbook runs --db /tmp/drbook-demo/drbook.db --limit 1 --output json | sed -n 's/.*"ID": "\([^"]*\)".*/\1/p' | head -1)
