package main

import (
	"errors"
	"fmt"
	"io"

	"github.com/msgrhq/msgr/devcert"
)

// devCertsCommand writes development certificates and prints how to use them.
func devCertsCommand(args []string, stdout io.Writer) error {
	if len(args) < 1 || args[0] == "" || args[0][0] == '-' {
		return errors.New("usage: msgrd dev-certs DIR [HOST...] (default hosts: localhost 127.0.0.1 ::1)")
	}
	f, err := devcert.Generate(args[0], args[1:])
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, `development certificates written (valid one year, NOT for production):
  CA      %s
  server  %s  %s
  client  %s  %s
run the broker with TLS:
  msgrd -tls-cert %s -tls-key %s -tls-client-ca %s -tls-client-auth request
`, f.CACert, f.ServerCert, f.ServerKey, f.ClientCert, f.ClientKey, f.ServerCert, f.ServerKey, f.CACert)
	return nil
}
