/*
 * kap_shim_cli.h -- kap-shim's shim role: a CLI tool's stand-in in the
 * capsule (docs/cli-protocol.md).
 *
 *   kap-shim cli TOOL [ARGS...]
 *   TOOL [ARGS...]            (a link named TOOL to kap-shim, in the
 *                              shim directory at the front of PATH)
 *
 * The call goes to kapd's cli listener: KAP_CLI_SOCKET (a unix socket
 * path) or KAP_CLI_ADDR (HOST:PORT, default 127.0.0.1:3130).  Proxy mode:
 * kapd runs the tool; its stdout and stderr are written here as they
 * come, and the shim exits with the tool's status (dies of the same
 * signal when the tool did).  Direct mode: kapd answers with the tool's
 * environment, and the shim execs the real TOOL found on PATH without
 * the shim directory (any PATH entry whose TOOL is kap-shim itself, and
 * KAP_CLI_SHIM_DIR).  stdin (proxy mode) is streamed while the tool
 * runs, with backpressure both ways, its EOF the tool's stdin EOF; a
 * terminal is not read (the tool gets an EOF at once), and a stdin that
 * stays open never holds the output or the exit back: the shim exits
 * when the tool has.  A call kapd refuses, or a failure to reach kapd,
 * is one line on stderr and exit status 126 (denied) or 125.
 */
#ifndef KAP_SHIM_CLI_H
#define KAP_SHIM_CLI_H

/* role "cli": argv[0] is "cli", argv[1] the tool */
int kap_shim_cli(int argc, char **argv);

/* the tool's name is given (a link's basename); argv[0] is its name */
int kap_shim_cli_tool(const char *tool, int argc, char **argv);

#endif
