// Package logging builds drover's zerolog logger from the log section of the configuration.
package logging

import (
	"fmt"
	"io"
	"time"

	"github.com/rs/zerolog"

	"github.com/drover-hpc/drover/internal/config"
)

// New returns a logger writing to w in the configured format (json, or console for people) at the
// configured level.
func New(cfg config.Log, w io.Writer) (zerolog.Logger, error) {
	level, err := zerolog.ParseLevel(cfg.Level)
	if err != nil || cfg.Level == "" {
		return zerolog.Nop(), fmt.Errorf("log.level: %q is not a log level", cfg.Level)
	}
	switch cfg.Format {
	case "json":
	case "console":
		w = zerolog.ConsoleWriter{Out: w, TimeFormat: time.TimeOnly}
	default:
		return zerolog.Nop(), fmt.Errorf("log.format: %q is not one of json, console", cfg.Format)
	}
	return zerolog.New(w).Level(level).With().Timestamp().Logger(), nil
}
