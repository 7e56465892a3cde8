// Command whipgate is a WHIP/WHEP gateway for an 8K encoder box.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"whipgate/cmd"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := cmd.Run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "whipgate:", err)
		os.Exit(1)
	}
}
