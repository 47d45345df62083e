package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/zflowdev/zflow/engine"
	"github.com/zflowdev/zflow/nvmeof/initiator"
	"github.com/zflowdev/zflow/nvmeof/nvme"
	"github.com/zflowdev/zflow/nvmeof/target"
)

const nvmeofUsage = `zflow nvmeof serve [--listen ADDR]... --nqn NQN --namespace ram:SIZE|file:PATH[,size=SIZE]...
                  [--allow-host NQN]... [--discovery ADDR]    or    --config FILE
                                   serve NVMe/TCP subsystems until SIGINT or SIGTERM
zflow nvmeof discover ADDR         the discovery log of the target at ADDR
zflow nvmeof identify ADDR --nqn NQN        the controller and its namespaces
zflow nvmeof read ADDR --nqn NQN [--nsid N] --offset BYTES --length BYTES [--out FILE]
zflow nvmeof write ADDR --nqn NQN [--nsid N] --offset BYTES [--in FILE]   (then Flush)
`

// defaultHostNQN names this host when --hostnqn is not given.
const defaultHostNQN = "nqn.2014-08.org.nvmexpress:uuid:7a666c6f-0000-4000-8000-000000000001"

// listFlag is a flag that may be repeated.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

// cmdNvmeof is `zflow nvmeof`: a target and a small initiator.
func cmdNvmeof(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usageError{"nvmeof: which? serve, discover, identify, read or write\n" + nvmeofUsage}
	}
	switch args[0] {
	case "serve":
		return nvmeofServe(ctx, args[1:], stderr)
	case "discover", "identify", "read", "write":
		return nvmeofHost(ctx, args[0], args[1:], stdin, stdout, stderr)
	}
	return usageError{fmt.Sprintf("nvmeof: unknown subcommand %q (known: serve, discover, identify, read, write)\n%s", args[0], nvmeofUsage)}
}

func nvmeofServe(ctx context.Context, args []string, stderr io.Writer) error {
	fs := newFlags("nvmeof serve", stderr)
	var listen, namespaces, hosts listFlag
	fs.Var(&listen, "listen", "address to serve the subsystem and discovery on (repeatable; default 127.0.0.1:4420)")
	fs.Var(&namespaces, "namespace", "ram:SIZE or file:PATH[,size=SIZE]: NSID 1, 2, … in order (repeatable)")
	fs.Var(&hosts, "allow-host", "host NQN allowed to connect (repeatable; none: any host)")
	nqn := fs.String("nqn", "", "the subsystem's NQN")
	disc := fs.String("discovery", "", "address of a discovery-only port, e.g. 127.0.0.1:8009")
	config := fs.String("config", "", "YAML file of subsystems, namespaces, ports and allowed hosts (instead of the other flags)")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return usageError{"nvmeof serve: no arguments, only flags"}
	}
	var sc *serveConfig
	if *config != "" {
		if len(listen)+len(namespaces)+len(hosts) != 0 || *nqn != "" || *disc != "" {
			return usageError{"nvmeof serve: --config or the other flags, not both"}
		}
		src, err := os.ReadFile(*config)
		if err != nil {
			return exitError{exitUsage, fmt.Errorf("zflow: nvmeof serve: %w", err)}
		}
		if sc, err = parseServeConfig(*config, src); err != nil {
			return exitError{exitUsage, err}
		}
	} else {
		if len(listen) == 0 {
			listen = listFlag{"127.0.0.1:4420"}
		}
		sc = &serveConfig{Subsystems: []subsystemConfig{{NQN: *nqn, Namespaces: namespaces, AllowHosts: hosts}}}
		for _, a := range listen {
			sc.Ports = append(sc.Ports, portConfig{Listen: a})
		}
		if *disc != "" {
			sc.Ports = append(sc.Ports, portConfig{Listen: *disc, Discovery: true})
		}
		if _, err := sc.check(); err != nil {
			return usageError{"nvmeof serve: " + err.Error()}
		}
	}
	cfg, specs, closeFiles, err := sc.open()
	if err != nil {
		return fmt.Errorf("nvmeof serve: %w", err)
	}
	defer closeFiles()
	tg, err := target.New(cfg)
	if err != nil {
		return fmt.Errorf("nvmeof serve: %w", err)
	}
	var lns []net.Listener
	for _, p := range sc.Ports {
		ln, err := net.Listen("tcp", p.Listen)
		if err != nil {
			for _, l := range lns {
				l.Close()
			}
			return fmt.Errorf("nvmeof serve: %w", err)
		}
		lns = append(lns, ln)
	}
	for i, s := range cfg.Subsystems {
		var what []string
		for _, sp := range specs[i] {
			what = append(what, sp.String())
		}
		fmt.Fprintf(stderr, "nvmeof: subsystem %s: %d namespace(s): %s\n", s.NQN, len(what), strings.Join(what, ", "))
	}
	var wg sync.WaitGroup
	errs := make(chan error, len(lns))
	for i, ln := range lns {
		serve, kind := tg.Serve, "subsystems and discovery"
		if sc.Ports[i].Discovery {
			serve, kind = tg.ServeDiscovery, "discovery only"
		}
		fmt.Fprintf(stderr, "nvmeof: listening on %s (%s)\n", ln.Addr(), kind)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := serve(ln); err != nil {
				errs <- err
			}
		}()
	}
	sigctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	var runErr error
	select {
	case <-sigctx.Done():
	case runErr = <-errs:
	}
	fmt.Fprintf(stderr, "nvmeof: stopping: ports closed, disconnecting %d controller(s)\n", tg.Controllers())
	tg.Close()
	wg.Wait()
	if runErr != nil {
		return fmt.Errorf("nvmeof serve: %w", runErr)
	}
	fmt.Fprintln(stderr, "nvmeof: stopped; every connection closed")
	return nil
}

// nvmeofHost runs the initiator subcommands.
func nvmeofHost(ctx context.Context, sub string, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := newFlags("nvmeof "+sub, stderr)
	nqn := fs.String("nqn", "", "the subsystem's NQN")
	host := fs.String("hostnqn", defaultHostNQN, "this host's NQN")
	digests := fs.Bool("digests", false, "ask for header and data digests")
	timeout := fs.Duration("timeout", 30*time.Second, "give up after this long")
	reconnect := fs.Duration("reconnect-timeout", 10*time.Second, "after a lost connection, reconnect and resend the commands in flight for up to this long (0: fail at once)")
	var nsid *uint
	var offset, length *int64
	var path *string
	if sub == "read" || sub == "write" {
		nsid = fs.Uint("nsid", 1, "the namespace")
		offset = fs.Int64("offset", 0, "byte offset in the namespace")
		if sub == "read" {
			length = fs.Int64("length", 0, "bytes to read")
			path = fs.String("out", "", "write the bytes to FILE (default: stdout)")
		} else {
			path = fs.String("in", "", "read the bytes from FILE (default: stdin)")
		}
	}
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageError{fmt.Sprintf("nvmeof %s: one address, HOST:PORT\n%s", sub, nvmeofUsage)}
	}
	if sub != "discover" && *nqn == "" {
		return usageError{fmt.Sprintf("nvmeof %s: --nqn is required", sub)}
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	if *reconnect < 0 {
		return usageError{fmt.Sprintf("nvmeof %s: --reconnect-timeout must be 0 or positive, got %v", sub, *reconnect)}
	}
	cfg := initiator.Config{SubNQN: *nqn, HostNQN: *host, HeaderDigest: *digests, DataDigest: *digests, QueueDepth: 32, ReconnectTimeout: *reconnect}
	if sub == "discover" {
		ents, err := initiator.Discover(ctx, pos[0], cfg)
		if err != nil {
			return fmt.Errorf("nvmeof discover %s: %w", pos[0], err)
		}
		fmt.Fprintf(stdout, "%d record(s)\n", len(ents))
		for _, e := range ents {
			fmt.Fprintf(stdout, "%s  tcp %s  port %d  %s\n", e.SubNQN, net.JoinHostPort(e.TrAddr, e.TrSvcID), e.PortID, subtypeName(e.SubType))
		}
		return nil
	}
	if sub == "read" || sub == "write" {
		cfg.IOQueues = 4
	}
	c, err := initiator.Connect(ctx, pos[0], cfg)
	if err != nil {
		return fmt.Errorf("nvmeof %s %s: %w", sub, pos[0], err)
	}
	defer c.Close()
	switch sub {
	case "identify":
		id := &c.Identify
		fmt.Fprintf(stdout, "controller %d of %s\n  model %q serial %q firmware %q\n  version %d.%d, MDTS %d, MAXCMD %d, KAS %d00 ms, IOCCSZ %d, %d I/O queue(s) connected\n",
			c.CntlID, id.SubNQN, id.MN, id.SN, id.FR, id.Ver>>16, id.Ver>>8&0xFF, id.MDTS, id.MaxCmd, id.KAS, id.IOCCSZ, c.IOQueues())
		nss, err := c.Namespaces()
		if err != nil {
			return fmt.Errorf("nvmeof identify: %w", err)
		}
		for _, ns := range nss {
			fmt.Fprintf(stdout, "namespace %d: %d blocks of %d bytes (%s)\n", ns.ID, ns.Blocks, 1<<ns.BlockShift, engine.Size(int64(ns.Blocks)<<ns.BlockShift))
		}
		return nil
	case "read":
		ns, err := c.Namespace(uint32(*nsid))
		if err != nil {
			return fmt.Errorf("nvmeof read: %w", err)
		}
		if *length <= 0 || *length > 1<<30 {
			return usageError{"nvmeof read: --length of 1 byte to 1 GiB"}
		}
		buf := make([]byte, *length)
		if err := c.ReadAt(ns, buf, *offset); err != nil {
			return fmt.Errorf("nvmeof read: %w", err)
		}
		if *path == "" {
			_, err = stdout.Write(buf)
			return err
		}
		return os.WriteFile(*path, buf, 0o644)
	}
	ns, err := c.Namespace(uint32(*nsid))
	if err != nil {
		return fmt.Errorf("nvmeof write: %w", err)
	}
	var data []byte
	if *path == "" {
		data, err = io.ReadAll(io.LimitReader(stdin, 1<<30+1))
	} else {
		data, err = os.ReadFile(*path)
	}
	if err != nil {
		return fmt.Errorf("nvmeof write: %w", err)
	}
	if err := c.WriteAt(ns, data, *offset); err != nil {
		return fmt.Errorf("nvmeof write: %w", err)
	}
	if err := c.Flush(0, ns); err != nil {
		return fmt.Errorf("nvmeof write: flush: %w", err)
	}
	fmt.Fprintf(stderr, "nvmeof: wrote %d bytes at %d of namespace %d, flushed\n", len(data), *offset, ns.ID)
	return nil
}

func subtypeName(t uint8) string {
	switch t {
	case nvme.SubTypeNVM:
		return "nvm subsystem"
	case nvme.SubTypeReferral:
		return "referral"
	case nvme.SubTypeCurrentDiscovery:
		return "discovery subsystem"
	}
	return fmt.Sprintf("subtype %d", t)
}
