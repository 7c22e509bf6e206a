package nodeagent

import (
	"context"
	"fmt"
	"io"
	"log/slog"

	"github.com/hashicorp/go-hclog"
)

// slogSink forwards hclog records at or above level to slog.
type slogSink struct {
	log   *slog.Logger
	level hclog.Level
}

// Accept implements hclog.SinkAdapter.
func (s slogSink) Accept(name string, level hclog.Level, msg string, args ...any) {
	if level < s.level || level == hclog.Off {
		return
	}
	var sl slog.Level
	switch level {
	case hclog.Trace, hclog.Debug:
		sl = slog.LevelDebug
	case hclog.Info:
		sl = slog.LevelInfo
	case hclog.Warn:
		sl = slog.LevelWarn
	default:
		sl = slog.LevelError
	}
	// hclog hands over the logger's implied arguments (With) followed by
	// the call's: a key may come twice. Keep one attribute per key (the
	// last value, as a JSON reader would) so every line has unique keys.
	// Keys the slog handler writes itself (raft logs a duration as
	// "time") get the component's name in front.
	attrs := make([]slog.Attr, 0, len(args)/2+1)
	attrs = append(attrs, slog.String("component", name))
	at := map[string]int{"component": 0}
	for i := 0; i+1 < len(args); i += 2 {
		key := fmt.Sprint(args[i])
		switch key {
		case slog.TimeKey, slog.LevelKey, slog.MessageKey, slog.SourceKey, "component":
			key = name + "_" + key
		}
		if j, ok := at[key]; ok {
			attrs[j] = slog.Any(key, args[i+1])
			continue
		}
		at[key] = len(attrs)
		attrs = append(attrs, slog.Any(key, args[i+1]))
	}
	s.log.LogAttrs(context.Background(), sl, msg, attrs...)
}

// newHCLogger returns an hclog logger for raft whose records go through slog
// at the given level (hclog itself defaults to DEBUG and writes nothing here).
func newHCLogger(log *slog.Logger, name string, level string) hclog.Logger {
	lvl := hclog.LevelFromString(level)
	if lvl == hclog.NoLevel {
		lvl = hclog.Warn
	}
	l := hclog.NewInterceptLogger(&hclog.LoggerOptions{Name: name, Level: lvl, Output: io.Discard})
	l.RegisterSink(slogSink{log: log, level: lvl})
	return l
}
