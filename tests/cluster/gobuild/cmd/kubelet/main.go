// The upstream kubelet main, built from the k8s.io/kubernetes module: the harness's real node (tests/harness/node.py).
package main

import (
	"context"
	"os"

	"k8s.io/component-base/cli"
	"k8s.io/kubernetes/cmd/kubelet/app"
)

func main() {
	// NewKubeletCommand needs a real context (a nil one panics); the command itself handles SIGTERM.
	os.Exit(cli.Run(app.NewKubeletCommand(context.Background())))
}
