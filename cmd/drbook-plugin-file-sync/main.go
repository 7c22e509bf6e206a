// Command drbook-plugin-file-sync is a drbook step plugin providing
// file.sync: copy a file (typically a backup) from one inventory node to the
// step's target node through the runner, over the runner's own verified
// transports (SSH), with no credentials of its own and no direct connection
// between the nodes. The copy is streamed in chunks, written to a temporary
// file, verified by SHA-256 and renamed into place; a destination that
// already holds the same bytes is left alone (idempotent).
//
// It is an example of the plugin SDK's broker handle (Request.Target and
// Request.Node); drbook starts it, it is never run by hand.
package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"

	"github.com/drbook/drbook/steps/plugin/sdk"
)

const version = "1.0.0"

// chunk is how many base64 characters travel per write command: under the
// 128 KiB a single environment string may have, a multiple of 4.
const chunk = 96 << 10

func main() {
	sdk.Serve(sdk.Info{Name: "file-sync", Version: version}, syncKind{})
}

type syncKind struct{}

// Info implements sdk.Kind.
func (syncKind) Info() sdk.KindInfo {
	return sdk.KindInfo{
		Name:        "file.sync",
		Description: "Copy a file from another node to the target through the runner, verified by SHA-256.",
		Params: sdk.Object(sdk.Props{
			"from": sdk.String("Inventory node to copy from."),
			"src":  sdk.String("File on the source node."),
			"dest": sdk.String("File to write on the target (default: src)."),
			"mode": map[string]any{"type": "string", "pattern": "^0?[0-7]{3}$", "description": "Octal mode of the written file (default 0600)."},
		}, "from", "src"),
		Outputs:       []sdk.Output{{Name: "bytes"}, {Name: "sha256"}, {Name: "changed"}},
		Targets:       sdk.TargetsRequired,
		Idempotent:    true,
		SummaryParams: []string{"from", "src", "dest"},
	}
}

var modeRE = regexp.MustCompile(`^0?[0-7]{3}$`)

// Run implements sdk.Kind.
func (syncKind) Run(ctx context.Context, req *sdk.Request) (sdk.Result, error) {
	if err := req.Require("from", "src"); err != nil {
		return sdk.Result{}, err
	}
	from, _ := req.String("from")
	src, _ := req.String("src")
	dest, err := req.String("dest")
	if err != nil {
		return sdk.Result{}, err
	}
	if dest == "" {
		dest = src
	}
	mode, err := req.String("mode")
	if err != nil {
		return sdk.Result{}, err
	}
	if mode == "" {
		mode = "0600"
	}
	if !modeRE.MatchString(mode) {
		return sdk.Result{}, fmt.Errorf("%w: mode %q is not an octal file mode", sdk.ErrBadParams, mode)
	}
	if req.Target == nil {
		return sdk.Result{}, fmt.Errorf("%w: file.sync needs a target node (on:)", sdk.ErrBadParams)
	}
	source, target := req.Node(from), req.Target

	sum, size, err := hashFile(ctx, source, src, req.Stderr)
	if err != nil {
		return sdk.Result{}, fmt.Errorf("source %s:%s: %w", from, src, err)
	}
	outs := map[string]string{"bytes": strconv.FormatInt(size, 10), "sha256": sum, "changed": "false"}
	if have, _, err := hashFile(ctx, target, dest, nil); err == nil && have == sum {
		fmt.Fprintf(req.Stdout, "%s:%s already holds the same %d bytes (sha256 %s)\n", target.Name, dest, size, sum[:16])
		return sdk.Result{Outputs: outs, Message: "already in sync"}, nil
	}

	tmp := dest + ".drbook-sync.tmp"
	env := map[string]string{"DRBOOK_SYNC_TMP": tmp}
	if err := run(ctx, target, `umask 077 && : > "$DRBOOK_SYNC_TMP"`, env, req.Stderr); err != nil {
		return sdk.Result{}, fmt.Errorf("create %s:%s: %w", target.Name, tmp, err)
	}
	if _, err := copyChunks(ctx, source, target, src, env, req); err != nil {
		_ = run(context.WithoutCancel(ctx), target, `rm -f -- "$DRBOOK_SYNC_TMP"`, env, nil)
		return sdk.Result{}, err
	}
	got, _, err := hashFile(ctx, target, tmp, req.Stderr)
	if err != nil || got != sum {
		_ = run(context.WithoutCancel(ctx), target, `rm -f -- "$DRBOOK_SYNC_TMP"`, env, nil)
		if err == nil {
			err = fmt.Errorf("sha256 %s, want %s: the copy is corrupt and was removed", got, sum)
		}
		return sdk.Result{}, fmt.Errorf("verify %s:%s: %w", target.Name, tmp, err)
	}
	env["DRBOOK_SYNC_DEST"], env["DRBOOK_SYNC_MODE"] = dest, mode
	if err := run(ctx, target, `chmod "$DRBOOK_SYNC_MODE" "$DRBOOK_SYNC_TMP" && mv -f -- "$DRBOOK_SYNC_TMP" "$DRBOOK_SYNC_DEST"`, env, req.Stderr); err != nil {
		return sdk.Result{}, fmt.Errorf("install %s:%s: %w", target.Name, dest, err)
	}
	fmt.Fprintf(req.Stdout, "copied %s:%s -> %s:%s (%d bytes, sha256 %s)\n", from, src, target.Name, dest, size, sum[:16])
	outs["changed"] = "true"
	return sdk.Result{Outputs: outs}, nil
}

// copyChunks streams src as base64 from the source node and appends it to
// the target's temporary file chunk by chunk.
func copyChunks(ctx context.Context, source, target *sdk.Target, src string, env map[string]string, req *sdk.Request) (int64, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	pr, pw := io.Pipe()
	readErr := make(chan error, 1)
	go func() {
		code, err := source.Run(ctx, `base64 -w 0 < "$DRBOOK_SYNC_SRC"`, map[string]string{"DRBOOK_SYNC_SRC": src}, pw, req.Stderr)
		if err == nil && code != 0 {
			err = &sdk.ExitError{Code: code}
		}
		pw.CloseWithError(err)
		readErr <- err
	}()
	var written int64
	buf := make([]byte, chunk)
	for n := 0; ; n++ {
		k, err := io.ReadFull(pr, buf)
		if k > 0 {
			cenv := map[string]string{"DRBOOK_SYNC_TMP": env["DRBOOK_SYNC_TMP"], "DRBOOK_SYNC_CHUNK": string(buf[:k])}
			if werr := run(ctx, target, `printf '%s' "$DRBOOK_SYNC_CHUNK" | base64 -d >> "$DRBOOK_SYNC_TMP"`, cenv, req.Stderr); werr != nil {
				cancel()
				_ = pr.Close()
				<-readErr
				return written, fmt.Errorf("write chunk %d to %s: %w", n, target.Name, werr)
			}
			written += int64(k) / 4 * 3 // about: padding is not subtracted
			if n%32 == 31 {
				fmt.Fprintf(req.Stdout, "copied ~%d bytes\n", written)
			}
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			break
		}
		if err != nil {
			<-readErr
			return written, fmt.Errorf("read %s: %w", src, err)
		}
	}
	if err := <-readErr; err != nil {
		return written, fmt.Errorf("read %s: %w", src, err)
	}
	return written, nil
}

// hashFile returns a file's SHA-256 and size on a node.
func hashFile(ctx context.Context, n *sdk.Target, path string, stderr io.Writer) (string, int64, error) {
	var out bytes.Buffer
	code, err := n.Run(ctx, `test -f "$F" && sha256sum < "$F" && wc -c < "$F"`, map[string]string{"F": path}, &out, stderr)
	if err != nil {
		return "", 0, err
	}
	if code != 0 {
		return "", 0, fmt.Errorf("no such file on %s (exit %d)", n.Name, code)
	}
	f := strings.Fields(out.String())
	if len(f) < 3 || len(f[0]) != 64 {
		return "", 0, fmt.Errorf("unexpected sha256sum output %q", out.String())
	}
	size, err := strconv.ParseInt(f[len(f)-1], 10, 64)
	if err != nil {
		return "", 0, fmt.Errorf("unexpected wc output %q", out.String())
	}
	return f[0], size, nil
}

// run runs a command that must succeed.
func run(ctx context.Context, n *sdk.Target, line string, env map[string]string, stderr io.Writer) error {
	code, err := n.Run(ctx, line, env, nil, stderr)
	if err != nil {
		return err
	}
	if code != 0 {
		return &sdk.ExitError{Code: code}
	}
	return nil
}
