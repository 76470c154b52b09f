// Command pause is the cluster's pod sandbox ("pause") process, the project's own: it holds the
// pod's namespaces, reaps the zombies of a shared PID namespace, and exits 0 on SIGINT or
// SIGTERM. Built static (CGO_ENABLED=0) into the pause image by hack/images.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	sig := make(chan os.Signal, 8)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for s := range sig {
		if s != syscall.SIGCHLD {
			os.Exit(0)
		}
		for {
			var ws syscall.WaitStatus
			pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
}
