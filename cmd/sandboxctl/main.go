// Command sandboxctl is the operator CLI of sandboxd. It talks to the daemon
// over its Unix socket through package client, and to nothing else.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "sandboxctl: no commands yet")
	os.Exit(2)
}
