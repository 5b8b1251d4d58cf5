// The pgx client of the live conformance kit (see ../PROTOCOL.md).
//
// It reads one JSON request per line on standard input, connects with pgx v4 using the
// request's libpq URI, asks the server whether the session is encrypted, and answers one JSON
// line on standard output. Nothing else is written to standard output.
//
// Parameter mapping, as a pgx user would do it:
//   - the URI goes to pgx.ParseConfig unchanged: pgx parses sslmode, sslrootcert, sslcert,
//     sslkey, connect_timeout and application_name itself, with its own semantics;
//   - hostaddr is not a pgx keyword: ParseConfig would forward it to the server as a run-time
//     parameter, which the server refuses. A pgx user who wants "connect to this address, but
//     verify the certificate against host" sets Config.LookupFunc, pgx's own hook for address
//     resolution, so that is what this client does: the hostaddr parameter is removed from the
//     run-time parameters and the host name resolves to it. TLS settings are untouched;
//   - home: pgx takes ~/.postgresql/root.crt (and postgresql.crt/.key, .pgpass) from the
//     home directory that os/user reports for the process's user (the password database),
//     not from $HOME, and offers no setting to point it elsewhere, so the request's home
//     cannot reach it and is not used.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/jackc/pgx/v4"
)

type request struct {
	ID       string            `json:"id"`
	Params   map[string]string `json:"params"`
	URI      string            `json:"uri"`
	Home     string            `json:"home"`
	TimeoutS float64           `json:"timeout_s"`
}

type reply struct {
	ID      string  `json:"id"`
	Outcome string  `json:"outcome"`
	Message *string `json:"message"`
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if s == "" {
		s = "error without a message"
	}
	if len(s) > 2000 {
		s = s[:2000]
	}
	return s
}

func fail(msg string) (string, *string) {
	m := firstLine(msg)
	return "fail", &m
}

// run connects for one request and returns the outcome and message.
func run(req *request) (outcome string, message *string) {
	defer func() {
		if r := recover(); r != nil {
			outcome, message = fail(fmt.Sprintf("panic: %v", r))
		}
	}()

	// The driver's own deadline stays a little below the harness's wait.
	budget := time.Duration(req.TimeoutS*float64(time.Second)) - 2*time.Second
	if budget < time.Second {
		budget = time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), budget)
	defer cancel()

	cfg, err := pgx.ParseConfig(req.URI)
	if err != nil {
		return fail(err.Error())
	}
	if addr, ok := cfg.RuntimeParams["hostaddr"]; ok {
		delete(cfg.RuntimeParams, "hostaddr")
		cfg.LookupFunc = func(context.Context, string) ([]string, error) {
			return []string{addr}, nil
		}
	}

	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return fail(err.Error())
	}
	defer func() {
		closeCtx, closeCancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer closeCancel()
		_ = conn.Close(closeCtx)
	}()

	var ssl *bool
	if err := conn.QueryRow(ctx, "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").Scan(&ssl); err != nil {
		return fail("connected, but the query failed: " + err.Error())
	}
	if ssl != nil && *ssl {
		return "tls", nil
	}
	return "plain", nil
}

func main() {
	in := bufio.NewReaderSize(os.Stdin, 1<<16)
	out := bufio.NewWriter(os.Stdout)
	for {
		line, err := in.ReadString('\n')
		if strings.TrimSpace(line) != "" {
			var req request
			var rep reply
			if jerr := json.Unmarshal([]byte(line), &req); jerr != nil {
				fmt.Fprintf(os.Stderr, "pgx client: bad request line: %v\n", jerr)
				rep.ID = req.ID
				rep.Outcome, rep.Message = fail("bad request: " + jerr.Error())
			} else {
				rep.ID = req.ID
				rep.Outcome, rep.Message = run(&req)
			}
			b, _ := json.Marshal(rep)
			out.Write(b)
			out.WriteByte('\n')
			out.Flush()
		}
		if err == io.EOF {
			return
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "pgx client: reading standard input: %v\n", err)
			os.Exit(1)
		}
	}
}
