/*
 * test_cli_profiles.c -- the profiles generated at build time for
 * kubectl, docker, aws and git, and the bypass table of cli-policy.md
 * section 1.10 for each: one row per class (global-flag arity, "--",
 * "=" forms, abbreviations, aliases, plugins, parameters from files,
 * credential printers, escape hatches, canonicalisation that must not
 * over-deny).  A profile the build could not make (tool not installed)
 * is skipped with a reason.  Where the tool is installed, the canonical
 * argv kapd would execute is handed to the real tool (no cluster, daemon
 * or cloud: they point at nothing), which must not call it a usage error.
 */
#include "config.h"

#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <kapd/kap_pool.h>

#include "cli_verdict.h"


/* The first tool on PATH (as the build's generator found it), or NULL. */
static const char *
which(const char *tool)
{
    const char *path = getenv("PATH");

    while (path != NULL && *path) {
        size_t      n = strcspn(path, ":");
        const char *f = kap_psprintf(pool, "%.*s/%s", (int) n, path, tool);

        if (n > 0 && access(f, X_OK) == 0)
            return f;
        path += n + (path[n] == ':');
    }
    return NULL;
}

static int load_from(const char *dir, const char *tool);

/* Load TOOL.prof from the build; 0 (and a skip note) when it is empty. */
static int
load(const char *tool)
{
    return load_from(KAP_CLI_PROFILE_DIR, tool);
}

static int
load_from(const char *dir, const char *tool)
{
    const char *path = kap_psprintf(pool, "%s/%s.prof", dir, tool);
    size_t      len = 0;
    char       *txt = tap_slurp(path, &len);
    char        err[256];

    prof = NULL;
    if (txt == NULL || len == 0) {
        diag("skip: no %s profile at %s (%s is not installed at build time)",
             tool, path, tool);
        free(txt);
        return 0;
    }
    prof = kap_cli_profile_parse(pool, txt, len, err, sizeof(err));
    free(txt);
    if (!ok(prof != NULL, "the generated %s profile loads (%s)", tool,
            prof ? prof->version : err))
        return 0;
    /* aws on PATH may be a shim that needs its environment */
    if (strcmp(tool, "aws") != 0 && which(tool) != NULL) {
        int rc = kap_cli_version_check(prof, which(tool), err, sizeof(err));

        ok(rc == 0, "the installed %s is the profile's version (%s)", tool,
           rc == 0 ? prof->version : err);
    }
    return 1;
}

/*
 * Run the real tool with the canonical argv of the last call, env as
 * given; 1 if its stderr shows no usage error (unknown flag or command,
 * missing value), 0 if it does, -1 if it could not run.
 */
static int
real_parses(char *const *env)
{
    char        path[] = "/tmp/kap-cli-prof-XXXXXX";
    int         fd = mkstemp(path), st;
    pid_t       pid;
    char        buf[8192];
    ssize_t     n;
    posix_spawn_file_actions_t fa;
    static const char *const usage[] = {
        "unknown flag", "unknown shorthand", "unknown command",
        "flag needs an argument", "is not a docker command",
        "Unknown options", "invalid choice", "unknown option",
        "usage: git", "requires at least", "arguments are required",
        "expected one argument", "ambiguous option", NULL
    };

    if (fd < 0)
        return -1;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, fd, 2);
    st = posix_spawnp(&pid, last.argv[0], &fa, NULL, (char *const *) last.argv,
                      env);
    posix_spawn_file_actions_destroy(&fa);
    if (st != 0 || waitpid(pid, &st, 0) < 0) {
        close(fd);
        unlink(path);
        return -1;
    }
    n = pread(fd, buf, sizeof(buf) - 1, 0);
    close(fd);
    unlink(path);
    buf[n > 0 ? n : 0] = '\0';
    for (size_t i = 0; usage[i] != NULL; i++)
        if (strstr(buf, usage[i]) != NULL) {
            diag("%s", buf);
            return 0;
        }
    return 1;
}

static void
real_check(const char *const *const *calls, size_t n, char *const *env)
{
    for (size_t i = 0; i < n; i++) {
        const char *c = canon(calls[i]);

        ok(last.argv != NULL && real_parses(env) == 1,
           "the real %s parses '%s'", prof->tool, c);
        last.argv = NULL;
    }
}

static void
test_kubectl(void)
{
    static char *env[] = { "HOME=/nonexistent", "KUBECONFIG=/nonexistent",
                           "KUBERC=off", "PATH=/usr/bin:/bin", NULL };
    const char *const *const real[] = {
        A("-n", "dev", "get", "pods", "-o", "yaml"),
        A("get", "pods", "--request_timeout=1s", "-ndev"),
        A("create", "cm", "x", "--from-literal=a=b", "--dry-run"),
        A("logs", "-f", "p", "-c", "c", "--tail", "5"),
        A("delete", "pod", "x", "--grace-period=0", "--wait=false"),
        A("get", "Secret/x", "-o", "yaml"),
        A("get", "Pods,SECRETS.v1.", "a"),
        A("label", "app=x", "Secret", "s"),
        A("logs", "Deploy/web"),
    };

    if (!load("kubectl"))
        return;
    ok(prof->versioncmd != NULL && kap_cli_version_ok(prof, prof->version,
                                                      strlen(prof->version)),
       "the kubectl profile records its version and how to print it");
    /* 1. flags before and between command words: globals anywhere */
    is_str(canon(A("-n", "dev", "get", "pods")),
           "kubectl get --namespace=dev pods", "-n before the verb");
    is_str(verdict(A("--kubeconfig", "./x", "get", "pods"), ALL, NONE),
           "guarded: --kubeconfig", "--kubeconfig runs exec plugins");
    is_str(verdict(A("get", "-s", "https://evil.example", "pods"), ALL, NONE),
           "guarded: --server", "-s sends the token elsewhere");
    is_str(verdict(A("--token=x", "get", "pods"), ALL, NONE),
           "guarded: --token", "--token=");
    /* 2. value-arity confusion */
    is_str(canon(A("-n", "get", "delete", "pods", "--all")),
           "kubectl delete --namespace=get --all pods", "-n eats get: it is delete");
    is_str(verdict(A("-n", "get", "delete", "pods", "--all"), A("get **"), NONE),
           "no-allow-rule", "a delete is not a get");
    is_str(verdict(A("--foo", "get", "delete", "pods"), ALL, NONE),
           "unknown-global-flag --foo", "an unknown flag before the verb");
    /* 3. = / attached / underscore forms */
    is_str(canon(A("get", "pods", "-ndev", "--request_timeout=5s")),
           "kubectl get --namespace=dev --request-timeout=5s pods",
           "-ndev and --request_timeout");
    is_str(verdict(A("get", "pods", "--insecure_skip_tls_verify"), ALL, NONE),
           "guarded: --insecure-skip-tls-verify", "_ spelling of a guarded flag");
    /* 4. -- */
    is_str(verdict(A("--", "get", "pods"), ALL, NONE), "no-command", "-- first");
    is_str(verdict(A("exec", "p", "--", "sh"), ALL, NONE),
           "sensitive: exec", "exec POD -- CMD");
    /* 5. no abbreviation */
    is_str(verdict(A("get", "pods", "--namesp", "dev"), ALL, NONE),
           "unknown-flag --namesp", "--namesp");
    is_str(verdict(A("ge", "pods"), ALL, NONE), "unknown-command ge", "ge");
    is_str(verdict(A("", "get", "pods"), ALL, NONE), "unknown-command ",
           "an empty word where the command belongs (it was run last)");
    is_str(verdict(A("-", "get", "pods"), ALL, NONE), "unknown-command -",
           "'-' where the command belongs");
    /* 6. aliases */
    is_str(canon(A("create", "cm", "x", "--from-literal=a=b")),
           "kubectl create configmap --from-literal=a=b x", "create cm");
    is_str(verdict(A("create", "cm", "x"), ALL, A("create configmap")),
           "deny-rule: create configmap", "a deny rule catches the alias");
    /* 7. plugins */
    is_str(verdict(A("foo", "a", "b"), ALL, NONE), "unknown-command foo",
           "kubectl-foo on PATH");
    is_str(verdict(A("create", "bar", "x"), ALL, NONE), "unknown-command bar",
           "kubectl-create-bar");
    /* 8. parameters from files */
    is_str(verdict(A("apply", "-f", "x.yaml"), ALL, NONE),
           "guarded: --filename", "-f hides the kinds");
    is_str(verdict(A("apply", "-f", "k8s/a.yaml"), A("apply --filename=k8s/*"), NONE),
           "allow", "a rule naming the files");
    /* 9. credential printers */
    is_str(verdict(A("config", "view", "--raw"), ALL, NONE),
           "sensitive: config view --raw", "config view --raw");
    is_str(verdict(A("config", "view"), ALL, NONE), "allow", "config view redacts");
    /* 10. escape hatches */
    is_str(verdict(A("get", "pods", "-n", "dev", "-A"), ALL, NONE),
           "guarded: --all-namespaces", "-A wins over -n");
    is_str(verdict(A("proxy", "--port=8001"), ALL, NONE),
           "sensitive: proxy", "proxy listens with the credentials");
    /* 11. canonicalisation that must not over-deny */
    is_str(verdict(A("get", "pods", "-n", "dev", "-o", "yaml"),
                   A("get ** --namespace=dev"), NONE),
           "allow", "get ** --namespace=dev");
    is_str(verdict(A("get", "pods"), A("get ** --namespace=dev"), NONE),
           "no-allow-rule", "no -n: the rule's --namespace=dev fails closed");
    /* 12. resource types: one canonical plural per type, so a rule on
       "get secrets" holds for every spelling kubectl accepts */
    {
        const char *const *const sp[] = {
            A("get", "secret"), A("get", "SECRETS"), A("get", "Secret"),
            A("get", "secrets.v1."), A("get", "secrets.v1"),
            A("get", "secrets."), A("get", "Secret.v1.core"),
            A("get", "secret/x"), A("get", "Secrets/x", "-o", "yaml"),
            A("get", "secrets,pods"), A("get", "pods,secret"),
            A("get", "po,Secrets.v1."), A("get", "pods/a", "secret/b"),
            A("get", "-n", "dev", "secret", "x"),
        };

        for (size_t i = 0; i < sizeof(sp) / sizeof(sp[0]); i++) {
            const char *c = canon(sp[i]);

            is_str(verdict(sp[i], ALL, A("get secrets")),
                   "deny-rule: get secrets",
                   kap_psprintf(pool, "deny get secrets holds for '%s'", c));
            is_str(verdict(sp[i], A("get pods", "get pods *"), NONE),
                   "no-allow-rule",
                   kap_psprintf(pool, "allow get pods does not reach '%s'", c));
        }
    }
    is_str(canon(A("get", "Secret/x", "-o", "yaml")),
           "kubectl get --output=yaml secrets x", "TYPE/NAME alone is TYPE NAME");
    is_str(canon(A("get", "Pods,SECRETS.v1.", "a")),
           "kubectl get pods,secrets a", "a list: each type canonical");
    is_str(canon(A("get", "po/a", "Secret/b")),
           "kubectl get pods/a secrets/b", "several TYPE/NAME stay pairs");
    is_str(canon(A("get", "deploy.v1.apps")), "kubectl get deployments",
           "TYPE.VERSION.GROUP of its own group");
    is_str(canon(A("get", "deployments.example.com")),
           "kubectl get deployments.example.com",
           "another group's type is not the built-in one");
    is_str(canon(A("logs", "Deploy/web")), "kubectl logs deployments/web",
           "logs TYPE/NAME");
    is_str(canon(A("label", "app=x", "Secret", "s")),
           "kubectl label secrets app=x s", "label: the type goes first");
    is_str(verdict(A("label", "app=x", "secret/s"), ALL, A("label secrets")),
           "deny-rule: label secrets", "label KEY=V TYPE/NAME");
    is_str(verdict(A("get", "all"), A("get pods"), NONE), "no-allow-rule",
           "all is several types");
    is_str(verdict(A("get", "all"), ALL, A("get secrets")), "allow",
           "all holds no secrets");
    is_str(verdict(A("get", "all"), ALL, A("get deployments")),
           "deny-rule: get deployments", "all holds deployments");
    is_str(verdict(A("get", "--", "secrets"), ALL, NONE),
           "bad-resource-args: arguments after --", "get -- TYPE");
    is_str(verdict(A("get", "pods", "secret/x"), ALL, NONE),
           "bad-resource-args: TYPE/NAME mixed with other arguments",
           "a mix kubectl refuses");
    is_str(verdict(A("label", "foo-/secrets", "a=b", "--all"), ALL,
                   A("label secrets")),
           "bad-resource-args: TYPE/NAME that reads as a label or a flag",
           "a lone pair whose type reads as a label removal (kubectl would "
           "take the name as the type)");
    is_str(verdict(A("label", "pods/foo-", "a=b", "--all"), ALL, NONE),
           "bad-resource-args: TYPE/NAME that reads as a label or a flag",
           "a lone pair whose name reads as a label removal");
    is_str(verdict(A("get", "pods/-nkube-system"), A("get pods *"), NONE),
           "bad-resource-args: TYPE/NAME that reads as a label or a flag",
           "a lone pair whose name would be read as a flag (-n, guarded)");
    is_str(verdict(A("get", "po", "x"), A("get pods *"), NONE), "allow",
           "a short name is its plural");
    is_str(verdict(A("get", "po,svc"), A("get pods", "get services"), NONE),
           "allow", "a list: every type allowed");
    is_str(verdict(A("get", "secrets", "x"), A("get Secret/x"), NONE), "allow",
           "a rule's type is canonical too");
    is_str(verdict(A("delete", "Secrets.v1.", "s1"), ALL, A("delete secret")),
           "deny-rule: delete secret", "a deny rule's singular");
    if (access("/usr/bin/kubectl", X_OK) == 0)
        real_check(real, sizeof(real) / sizeof(real[0]), env);
}

static void
test_docker(void)
{
    static char *env[] = { "HOME=/nonexistent", "DOCKER_CONFIG=/nonexistent",
                           "DOCKER_HOST=unix:///nonexistent.sock",
                           "PATH=/usr/local/bin:/usr/bin:/bin", NULL };
    const char *const *const real[] = {
        A("ps", "-a", "--format", "{{.ID}}"),
        A("-l", "error", "images", "-q"),
        A("run", "--rm", "-e", "A=1", "alpine", "sh", "-c", "echo -v"),
        A("rmi", "-f", "x"),
        A("network", "ls"),
    };

    if (!load("docker"))
        return;
    /* 1. globals only before the command */
    is_str(verdict(A("-H", "tcp://evil.example:2375", "ps"), ALL, NONE),
           "guarded: --host", "-H another daemon");
    is_str(verdict(A("ps", "-H", "tcp://x"), ALL, NONE), "unknown-flag -H",
           "-H after the command (docker rejects it too)");
    is_str(canon(A("-l", "error", "ps")),
           "docker --log-level=error container ls", "a global stays in front");
    /* 2. arity */
    is_str(verdict(A("--foo", "ps"), ALL, NONE), "unknown-global-flag --foo",
           "an unknown global");
    /* 3. = / attached forms */
    is_str(verdict(A("-Htcp://x", "ps"), ALL, NONE), "guarded: --host", "-Hvalue");
    is_str(verdict(A("--context=evil", "ps"), ALL, NONE), "guarded: --context",
           "--context=");
    /* 4. -- */
    is_str(verdict(A("--", "ps"), ALL, NONE), "no-command", "-- first");
    /* 5. no abbreviation */
    is_str(verdict(A("--hos", "x", "ps"), ALL, NONE), "unknown-global-flag --hos",
           "--hos");
    is_str(verdict(A("contain", "ls"), ALL, NONE), "unknown-command contain",
           "contain");
    /* 6. aliases and shortcuts */
    is_str(canon(A("ps", "-a")), "docker container ls --all", "ps");
    is_str(canon(A("rmi", "x")), "docker image rm x", "rmi");
    is_str(verdict(A("rm", "-f", "c"), ALL, A("container rm")),
           "deny-rule: container rm", "a deny rule catches the shortcut");
    /* 7. plugins */
    is_str(verdict(A("foo", "bar"), ALL, NONE), "unknown-command foo",
           "a cli-plugin");
    /* 8. files from the sidecar */
    is_str(verdict(A("run", "--env-file", "/proc/self/environ", "alpine", "env"),
                   ALL, NONE),
           "guarded: container run --env-file", "--env-file");
    is_str(verdict(A("run", "-v", "/:/h", "alpine"), ALL, NONE),
           "guarded: container run --volume", "-v /:/h");
    {   /* docker 20: image build; docker 23+: builder build */
        const char *v = verdict(A("build", "."), ALL, NONE);
        ok(strcmp(v, "guarded: image build") == 0
           || strcmp(v, "guarded: builder build") == 0, "a build context: %s", v);
    }
    /* 9. credentials */
    is_str(verdict(A("login", "-u", "x"), ALL, NONE), "sensitive: login", "login");
    /* 10. escape hatches: root on the host */
    is_str(verdict(A("run", "--privileged", "alpine"), ALL, NONE),
           "guarded: container run --privileged", "--privileged");
    is_str(verdict(A("exec", "c", "sh"), ALL, NONE),
           "sensitive: container exec", "exec");
    /* 11. must not over-deny: after IMAGE everything is the container's */
    is_str(canon(A("run", "--rm", "alpine", "sh", "-v", "/:/h", "--privileged")),
           "docker container run --rm alpine sh -v /:/h --privileged",
           "flags after IMAGE are arguments");
    is_str(verdict(A("run", "--rm", "alpine", "ls", "-la"), A("container run **"),
                   NONE),
           "allow", "run with the container's own flags");
    if (access("/usr/bin/docker", X_OK) == 0)
        real_check(real, sizeof(real) / sizeof(real[0]), env);
}

static void
test_aws(void)
{
    static char *env[] = { "HOME=/nonexistent", "AWS_CONFIG_FILE=/nonexistent",
                           "AWS_SHARED_CREDENTIALS_FILE=/nonexistent",
                           "AWS_EC2_METADATA_DISABLED=true",
                           "AWS_DEFAULT_REGION=us-east-1",
                           "HTTPS_PROXY=http://127.0.0.1:9",
                           "HTTP_PROXY=http://127.0.0.1:9", "AWS_PAGER=",
                           "PATH=/root/.pyenv/shims:/usr/local/bin:/usr/bin:/bin",
                           NULL };
    const char *const *const real[] = {
        A("--region", "eu-west-1", "sts", "get-caller-identity"),
        A("s3api", "list-objects", "--buck", "b", "--max-items", "2"),
        A("ec2", "describe-instances", "--instance-ids", "i-1", "i-2",
          "--output", "json"),
        A("s3", "ls", "s3://logs/", "--recursive"),
    };

    if (!load("aws"))
        return;
    /* 1. global options anywhere */
    is_str(canon(A("s3", "ls", "--region", "eu-west-1")),
           "aws s3 ls --region=eu-west-1", "--region after the command");
    is_str(verdict(A("s3", "ls", "--profile", "admin"), ALL, NONE),
           "guarded: --profile", "--profile after the command");
    /* 2. arity: argparse consumes by arity */
    is_str(verdict(A("--region", "s3", "ls"), ALL, NONE),
           "unknown-command ls", "--region eats s3");
    is_str(verdict(A("s3api", "get-object", "--bucket", "--debug", "k", "o"),
                   ALL, NONE),
           "missing-value --bucket", "a value word with a dash (argparse refuses it)");
    is_str(verdict(A("--foo", "s3", "ls"), ALL, NONE),
           "unknown-global-flag --foo", "an unknown flag before the service");
    /* 3. = forms */
    is_str(verdict(A("--endpoint-url=http://127.0.0.1:9", "s3", "ls"), ALL, NONE),
           "guarded: --endpoint-url", "--endpoint-url=");
    is_str(verdict(A("--debug=true", "s3", "ls"), ALL, NONE),
           "bad-bool-value --debug=true", "a bool takes no =value in argparse");
    /* 4. -- */
    is_str(verdict(A("--", "sts", "get-caller-identity"), ALL, NONE),
           "no-command", "-- first (over-deny: awscli would run it)");
    /* 5. abbreviations: awscli leaves argparse's on */
    is_str(canon(A("--endp=http://x", "s3", "ls")),
           "aws s3 ls --endpoint-url=http://x", "--endp is --endpoint-url");
    is_str(verdict(A("s3", "ls", "--prof", "admin"), ALL, NONE),
           "guarded: --profile", "--prof after the command");
    is_str(canon(A("s3api", "list-objects", "--buck", "b")),
           "aws s3api list-objects --bucket=b", "--buck is --bucket");
    is_str(verdict(A("s3api", "list-objects", "--endpoint", "http://x", "--bucket", "b"),
                   ALL, NONE),
           "guarded: --endpoint-url", "--endpoint: a global's prefix wins");
    is_str(verdict(A("s3", "ls", "--no"), ALL, NONE), "ambiguous-flag --no",
           "--no is ambiguous");
    is_str(verdict(A("st", "get-caller-identity"), ALL, NONE),
           "unknown-command st", "no command abbreviation");
    is_str(verdict(A("STS", "get-caller-identity"), ALL, NONE),
           "unknown-command STS", "no case folding");
    /* 6. user aliases (~/.aws/cli/alias) */
    is_str(verdict(A("whoami"), ALL, NONE), "unknown-command whoami", "an alias word");
    /* 7. plugins: none; a service is a known word */
    is_str(verdict(A("sts", "get-caller-identity"), ALL, NONE), "allow",
           "a plain call under **");
    /* 8. file:// and @file */
    is_str(verdict(A("s3api", "head-bucket", "--bucket", "file:///proc/self/environ"),
                   ALL, NONE),
           "guarded: --bucket=file://*", "file:// on any parameter");
    is_str(verdict(A("s3api", "head-bucket", "--cli-input-json", "file://x.json"),
                   ALL, NONE),
           "guarded: --cli-input-json", "--cli-input-json");
    is_str(verdict(A("ec2", "describe-instances", "--filters", "file://f/a.json"),
                   A("ec2 describe-instances --filters=file://f/*.json **"), NONE),
           "allow", "a rule naming the file:// value");
    /* 9. credential printers */
    is_str(verdict(A("configure", "get", "aws_secret_access_key"), ALL, NONE),
           "sensitive: configure get", "configure get");
    is_str(verdict(A("sts", "get-session-token"), ALL, NONE),
           "sensitive: sts get-session-token", "sts get-session-token");
    is_str(verdict(A("s3", "presign", "s3://b/k"), ALL, NONE),
           "sensitive: s3 presign", "s3 presign");
    is_str(verdict(A("configure", "list"), ALL, NONE), "allow", "configure list");
    /* 10. escape hatches: --debug prints the session token */
    is_str(verdict(A("--debug", "s3", "ls"), ALL, NONE), "guarded: --debug", "--debug");
    is_str(verdict(A("s3", "cp", "/proc/self/environ", "s3://b/x"), ALL, NONE),
           "guarded: s3 cp", "s3 cp of a sidecar file");
    /* 11. canonicalisation that must not over-deny */
    is_str(canon(A("ec2", "describe-instances", "--instance-ids", "i-1", "i-2",
                   "--region", "x")),
           "aws ec2 describe-instances --instance-ids i-1 i-2 --region=x",
           "a list keeps its values");
    is_str(verdict(A("ec2", "describe-instances", "--instance-ids", "i-1", "i-2"),
                   A("ec2 describe-instances --instance-ids=i-*"), NONE),
           "allow", "every list value matches");
    is_str(verdict(A("s3", "ls", "s3://logs/a/"), A("s3 ls s3://logs/**"), NONE),
           "allow", "s3 ls in one bucket");
    is_str(verdict(A("s3", "ls", "s3://other/"), A("s3 ls s3://logs/**"), NONE),
           "no-allow-rule", "s3 ls of another bucket");
    is_str(verdict(A("s3", "cp", "s3://logs/a", "s3://logs/b"),
                   A("s3 cp s3://logs/* s3://logs/*"), NONE),
           "allow", "s3 cp spelled by the rule");
    if (access("/usr/bin/aws", X_OK) == 0)
        real_check(real, sizeof(real) / sizeof(real[0]), env);
}

static void
test_git(void)
{
    static char *env[] = { "HOME=/nonexistent", "GIT_DIR=/nonexistent/.git",
                           "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null",
                           "GIT_PAGER=cat", "PATH=/usr/bin:/bin", NULL };
    const char *const *const real[] = {
        A("status", "-sb"),
        A("branch", "--lis", "-v"),
        A("log"),
        A("--no-pager", "show-ref", "--heads"),
    };

    if (!load("git"))
        return;
    /* 1. globals before the command only */
    is_str(verdict(A("-C", "/tmp", "status"), ALL, NONE), "guarded: -C", "-C DIR");
    is_str(verdict(A("-c", "core.fsmonitor=evil", "status"), ALL, NONE),
           "guarded: -c", "-c runs programs through config");
    is_str(verdict(A("status", "--git-dir=x"), ALL, NONE), "unknown-flag --git-dir",
           "a global after the command");
    /* 2. arity */
    is_str(canon(A("--git-dir", "status", "log")), "git --git-dir=status log",
           "--git-dir eats status: it is log");
    is_str(verdict(A("--foo", "status"), ALL, NONE), "unknown-global-flag --foo",
           "an unknown global");
    /* 3. = / attached forms */
    is_str(canon(A("commit", "-mmsg", "-q")), "git commit --message=msg --quiet",
           "-mmsg");
    is_str(verdict(A("commit", "--quiet=yes"), ALL, NONE),
           "bad-bool-value --quiet=yes", "a bool takes no =value in git");
    /* 4. -- */
    is_str(verdict(A("--", "status"), ALL, NONE), "no-command", "-- first");
    is_str(canon(A("checkout", "--", "f")), "git checkout -- f", "-- kept");
    /* 5. abbreviations: git expands unique prefixes of long options */
    is_str(canon(A("branch", "--lis")), "git branch --list", "--lis is --list");
    is_str(verdict(A("push", "--forc"), ALL, NONE), "ambiguous-flag --forc",
           "--forc is ambiguous");
    is_str(verdict(A("stat"), ALL, NONE), "unknown-command stat",
           "no command abbreviation");
    /* 6. aliases */
    is_str(verdict(A("co", "main"), ALL, NONE), "unknown-command co", "an alias");
    /* 7. external git-foo */
    is_str(verdict(A("foo"), ALL, NONE), "unknown-command foo", "git-foo on PATH");
    /* 8. files and transports that run programs */
    is_str(verdict(A("clone", "--template=./tpl", "u"), ALL, NONE),
           "guarded: clone --template", "clone --template");
    is_str(verdict(A("fetch", "--upload-pack=sh -c x", "origin"), ALL, NONE),
           "guarded: fetch --upload-pack", "fetch --upload-pack");
    is_str(verdict(A("clone", "ext::sh -c x", "d"), ALL, NONE),
           "guarded: ext::*", "an ext:: URL");
    /* 9. credential printers */
    is_str(verdict(A("credential", "fill"), ALL, NONE), "sensitive: credential",
           "credential fill");
    is_str(verdict(A("config", "--get", "x"), ALL, NONE), "sensitive: config",
           "config");
    /* 10. escape hatches */
    is_str(verdict(A("rebase", "--exec", "sh", "main"), ALL, NONE),
           "sensitive: rebase --exec", "rebase --exec");
    is_str(verdict(A("bisect", "run", "sh"), ALL, NONE), "sensitive: bisect run",
           "bisect run");
    /* 11. canonicalisation that must not over-deny */
    is_str(canon(A("status", "-sb")), "git status --short --branch", "-sb");
    is_str(verdict(A("remote", "add", "origin", "u"), A("remote add * *"), NONE),
           "allow", "remote add");
    is_str(verdict(A("commit", "-m", "x"), A("commit **"), NONE), "allow", "commit -m");
    if (access("/usr/bin/git", X_OK) == 0)
        real_check(real, sizeof(real) / sizeof(real[0]), env);
}

/* The version line and check, with a fake tool that prints a version. */
static void
test_version(void)
{
    static const char txt[] = "tool faketool\nversion 1.2.3\nversioncmd --version\n";
    char        dir[] = "/tmp/kap-cli-ver-XXXXXX", err[512];
    const char *tool;
    FILE       *f;
    struct kap_cli_profile *p = kap_cli_profile_parse(pool, txt, strlen(txt),
                                                      err, sizeof(err));

    if (!ok(p != NULL && mkdtemp(dir) != NULL, "a profile with a version"))
        return;
    ok(kap_cli_version_ok(p, "faketool version 1.2.3 (x)", 26),
       "the version as a token");
    ok(!kap_cli_version_ok(p, "faketool version 1.2.34", 23)
       && !kap_cli_version_ok(p, "v1.2.3", 6) && !kap_cli_version_ok(p, "", 0),
       "not a part of a longer version");
    tool = kap_psprintf(pool, "%s/faketool", dir);
    f = fopen(tool, "w");
    fprintf(f, "#!/bin/sh\n[ \"$1\" = --version ] && echo \"faketool version $V\"\n");
    fclose(f);
    chmod(tool, 0700);
    setenv("V", "1.2.3", 1);     /* the tool's environment is empty: V unset */
    ok(kap_cli_version_check(p, tool, err, sizeof(err)) < 0
       && strstr(err, "not version 1.2.3") != NULL,
       "a tool printing another version is refused: %s", err);
    f = fopen(tool, "w");
    fprintf(f, "#!/bin/sh\n[ \"$1\" = --version ] && echo 'faketool version 1.2.3'\n");
    fclose(f);
    ok(kap_cli_version_check(p, tool, err, sizeof(err)) == 0,
       "the profile's version passes");
    ok(kap_cli_version_check(p, "/nonexistent/faketool", err, sizeof(err)) < 0
       && strstr(err, "cannot run") != NULL, "a missing tool: %s", err);
    unlink(tool);
    rmdir(dir);
}

/* glab, gcloud, az: hand-kept profiles from the reference (no binaries). */
static void
test_glab(void)
{
    if (!load_from(KAP_CLI_SRC_PROFILE_DIR, "glab"))
        return;
    is_str(canon(A("-R", "g/p", "mr", "ls", "--state", "opened")),
           "glab mr list --repo=g/p --state=opened", "-R before the group, mr ls");
    is_str(verdict(A("--hostname", "x", "auth", "status"), ALL, NONE),
           "unknown-global-flag --hostname", "a flag before the command");
    is_str(verdict(A("mr", "list", "-R", "evil.example/g/p"), ALL, NONE),
           "guarded: --repo=*.*/*", "-R with a host");
    is_str(verdict(A("api", "-XDELETE", "projects/1"), ALL, NONE),
           "sensitive: api --method!=GET", "api -XDELETE");
    is_str(verdict(A("api", "graphql", "-X", "GET"), ALL, NONE),
           "sensitive: api graphql", "api graphql");
    is_str(verdict(A("api", "-F", "a=@/etc/passwd", "-X", "GET", "x"),
                   A("api --method=GET **"), NONE),
           "guarded: api --field=*=@*", "-F k=@file");
    is_str(verdict(A("auth", "status", "-t"), ALL, NONE),
           "sensitive: auth status --show-token", "auth status -t");
    is_str(verdict(A("token", "new", "x"), ALL, NONE), "sensitive: token",
           "token new (alias of create)");
    is_str(verdict(A("variable", "export"), ALL, NONE),
           "sensitive: variable export", "variable export");
    is_str(verdict(A("alias", "set", "x", "y"), ALL, NONE), "sensitive: alias set",
           "alias set");
    is_str(canon(A("co", "12")), "glab mr checkout 12", "default alias co");
    is_str(verdict(A("ext"), ALL, NONE), "unknown-command ext", "a user alias");
    is_str(verdict(A("mr", "lis"), ALL, NONE), "unknown-command lis",
           "no abbreviation");
    is_str(verdict(A("--", "mr", "list"), ALL, NONE), "no-command", "-- first");
    is_str(verdict(A("pipe", "list"), A("ci list"), NONE), "allow",
           "pipe is ci");
    is_str(verdict(A("mr", "accept", "1"), ALL, A("mr merge")),
           "deny-rule: mr merge", "a deny rule catches accept");
}

static void
test_gcloud(void)
{
    if (!load_from(KAP_CLI_SRC_PROFILE_DIR, "gcloud"))
        return;
    is_str(canon(A("--project", "p2", "compute", "instances", "list", "--limit=5")),
           "gcloud compute instances list --project=p2 --limit=5",
           "a global anywhere");
    is_str(verdict(A("config", "list", "--flags-file=f.yaml"), ALL, NONE),
           "guarded: --flags-file", "--flags-file");
    is_str(verdict(A("projects", "list", "--forma=json"), ALL, NONE),
           "unknown-flag --forma", "no abbreviation");
    is_str(verdict(A("projects", "list", "--format=json"), ALL, NONE), "allow",
           "--format");
    is_str(verdict(A("auth", "print-access-token"), ALL, NONE),
           "sensitive: auth print-access-token", "print-access-token");
    is_str(verdict(A("config", "config-helper"), ALL, NONE),
           "sensitive: config config-helper", "config-helper");
    is_str(verdict(A("--impersonate-service-account=x", "projects", "list"), ALL,
                   NONE),
           "guarded: --impersonate-service-account", "impersonation");
    is_str(verdict(A("beta", "config", "list"), ALL, NONE),
           "unknown-command beta", "a release track (over-deny)");
    is_str(verdict(A("--", "config", "list"), ALL, NONE), "no-command", "-- first");
    is_str(verdict(A("--project", "config", "list"), ALL, NONE),
           "unknown-command list", "--project eats config");
    is_str(verdict(A("compute", "ssh", "vm"), ALL, NONE), "sensitive: compute ssh",
           "compute ssh");
    is_str(verdict(A("-q", "compute", "instances", "list", "--zones", "a", "b"),
                   A("compute instances list **"), NONE),
           "allow", "-q and a list");
}

static void
test_az(void)
{
    if (!load_from(KAP_CLI_SRC_PROFILE_DIR, "az"))
        return;
    is_str(canon(A("vm", "list", "--outp", "json", "-g", "rg")),
           "az vm list --output=json --resource-group=rg", "--outp is --output");
    is_str(verdict(A("@cmd.txt", "list"), ALL, NONE), "unknown-command @cmd.txt",
           "@file as a command word");
    is_str(verdict(A("vm", "list", "--query", "@/proc/self/environ"), ALL, NONE),
           "guarded: --query=@*", "@file as a value");
    is_str(verdict(A("vm", "show", "-n", "@-", "-g", "rg"), ALL, NONE),
           "guarded: --name=@*", "@- reads stdin");
    is_str(verdict(A("account", "get-access-token"), ALL, NONE),
           "sensitive: account get-access-token", "get-access-token");
    is_str(verdict(A("rest", "--url", "https://management.azure.com.evil.example/"),
                   A("rest --url=https://management.azure.com/*"), NONE),
           "no-allow-rule", "a look-alike ARM host");
    is_str(verdict(A("rest", "--url", "https://management.azure.com/subscriptions"),
                   A("rest --url=https://management.azure.com/*"), NONE),
           "allow", "the ARM host named by the rule");
    is_str(verdict(A("rest", "-m", "delete", "-u", "https://management.azure.com/x"),
                   A("rest --url=https://management.azure.com/*"), NONE),
           "sensitive: rest --method!=get", "rest delete");
    is_str(verdict(A("--debug", "vm", "list"), ALL, NONE), "guarded: --debug",
           "--debug");
    is_str(verdict(A("vm", "list", "--subs", "x"), ALL, NONE),
           "guarded: --subscription", "--subs is --subscription");
    is_str(verdict(A("acc", "list"), ALL, NONE), "unknown-command acc",
           "no command abbreviation");
    is_str(verdict(A("vm", "list", "--o", "json"), ALL, NONE),
           "ambiguous-flag --o", "--o is --output or --only-show-errors");
    is_str(verdict(A("extension", "add", "-n", "x"), ALL, NONE),
           "sensitive: extension", "extension add");
}

int
main(void)
{
    pool = kap_pool_create();
    test_version();
    test_kubectl();
    test_docker();
    test_aws();
    test_git();
    test_glab();
    test_gcloud();
    test_az();
    kap_pool_destroy(pool);
    return done_testing();
}
