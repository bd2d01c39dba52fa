package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/penstock-ml/penstock/daemon"
	"github.com/penstock-ml/penstock/persist"
	_ "github.com/penstock-ml/penstock/steps"     // registers the steps in persist.Default
	_ "github.com/penstock-ml/penstock/steps/mlp" // and the MLP
)

type multi []string

func (m *multi) String() string     { return strings.Join(*m, ",") }
func (m *multi) Set(v string) error { *m = append(*m, v); return nil }

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("penstockd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "penstockd.json", "the configuration file")
	check := fs.Bool("check-config", false, "validate the configuration, print it with its defaults, and exit")
	var sets multi
	fs.Var(&sets, "set", "override a configuration key: key=value (repeatable)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	cfg, err := daemon.LoadConfig(*path, sets...)
	if err != nil {
		fmt.Fprintln(stderr, "penstockd:", err)
		return 1
	}
	if *check {
		out, _ := json.MarshalIndent(cfg, "", "  ")
		fmt.Fprintln(stdout, string(out))
		return 0
	}
	log := daemon.NewLogger(stderr, cfg.Log)
	ctx, stop := context.WithCancelCause(context.Background())
	sig := make(chan os.Signal, 2)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		s := <-sig
		stop(fmt.Errorf("signal %v", s))
		s = <-sig
		log.Error("hard stop", "reason", "second signal", "signal", s.String())
		os.Exit(2)
	}()
	err = daemon.Run(ctx, cfg, persist.Default, daemon.WithLogger(log))
	switch {
	case err == nil:
		return 0
	case errors.Is(err, daemon.ErrHardStop):
		return 2
	default:
		log.Error("exit", "err", err)
		return 1
	}
}
