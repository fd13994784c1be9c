package Test::Kapd::FakeMCP;

# Test::Kapd::FakeMCP -- an MCP server for tests (Streamable HTTP, MCP
# 2025-03-26 and 2025-06-18), on top of Test::Kapd::FakeHTTP (one child
# per connection, every request recorded with its exact body bytes).
#
#   my $m = Test::Kapd::FakeMCP->new($t, port => $t->port('mcp'),
#       name => 'gh', addr => '127.0.0.2', path => '/mcp',
#       tools => [{ name => 'get_issue', description => '...' }, ...],
#       reply => 'sse', framing => 'cr');
#   $m->url;                       # http://127.0.0.2:PORT/mcp
#   $m->set(reply => 'json');      # change options for the next requests
#   $m->requests;                  # every HTTP request (FakeHTTP's form:
#                                  # method, target, headers, body bytes)
#   $m->rpc;                       # every JSON-RPC message received
#                                  # (batches flattened): {method, id,
#                                  # params, session}
#   $m->tool_calls;                # names of the tools/call received
#   $m->sessions;                  # live Mcp-Session-Ids
#   Test::Kapd::FakeMCP::sse_parse($body)     # a client's reading of SSE
#   Test::Kapd::FakeMCP::sse_messages($body)  # ... decoded as JSON
#
# Options (new() and set(); read again for every request):
#   path        the endpoint ('/mcp'); any other path is 404
#   tools       the tools/list result's tools (default: two tools)
#   reply       'json' (default) or 'sse': how a POST with requests is
#               answered
#   framing     how SSE events are written: 'lf' (default), 'crlf', 'cr'
#               (CR only), 'nospace' ("data:{...}"), 'multiline' (the
#               JSON pretty-printed over several data: lines), 'comments'
#               (": ..." comment lines, event:, retry: and id: fields
#               around the data), 'split' (every event cut into 5-byte
#               writes, split_delay seconds apart, default 0.05)
#   event_delay seconds between two events of one reply (default 0)
#   sessions    1 (default): initialize issues an Mcp-Session-Id and every
#               later request must carry a live one (missing: 400,
#               unknown: 404); DELETE ends it.  0: no sessions
#   protocols   the MCP-Protocol-Version values accepted (a request with
#               another one: 400); default both
#   before      JSON-RPC messages sent (SSE only) before a POST's replies:
#               server-to-client requests, notifications/tools/list_changed
#   get_events  messages sent on a GET stream, which then stays open;
#               undef: GET is 405
#   require     { header => value }: a request without it is 401
#   status      answer every request with this HTTP status (JSON body)
#   redirect    answer every request 307 to this URL
#   hang        1: read the request and never answer
#
# tools/call of "slow" always streams (SSE): a progress notification,
# slow_delay seconds (default 1), then the result.  Any other tool answers
# {content: [{type: "text", text: "called NAME"}]}.  A batch is answered
# with the replies to its requests (a JSON array, or one event each);
# notifications and client responses alone get 202.

use strict;
use warnings;

use Carp;
use JSON::PP;
use Time::HiRes ();
use Test::Kapd::FakeHTTP;

my $JSON = JSON::PP->new->canonical;

sub new {
    my ($class, $t, %o) = @_;
    my $name = $o{name} // 'mcp';
    my $self = bless {
        t     => $t,
        name  => $name,
        opts  => $t->testdir . "/fakemcp-$name.opts",
        sfile => $t->testdir . "/fakemcp-$name.sessions",
        addr  => $o{addr} // '127.0.0.1',
    }, $class;
    my %http = map { exists $o{$_} ? ($_ => delete $o{$_}) : () }
               qw(port addr tls cert_names cert key);
    delete $o{name};
    $self->{o} = { path => '/mcp', tools => default_tools(), reply => 'json',
                   framing => 'lf', sessions => 1,
                   protocols => ['2025-03-26', '2025-06-18'], %o };
    $self->_save;
    open my $fh, '>', $self->{sfile} or croak "$self->{sfile}: $!";
    close $fh;
    $self->{http} = Test::Kapd::FakeHTTP->new($t, %http, name => $name,
        handler => sub { $self->_handle(@_) });
    return $self;
}

sub default_tools {
    return [
        { name => 'get_issue', description => 'Read an issue',
          inputSchema => { type => 'object',
                           properties => { n => { type => 'number' } } } },
        { name => 'delete_repo', description => 'Delete a repository',
          inputSchema => { type => 'object' } },
    ];
}

sub url {
    my ($self, $path) = @_;
    my $h = $self->{http};
    my $scheme = $h->{tls} ? 'https' : 'http';
    return "$scheme://$self->{addr}:" . $h->port . ($path // $self->{o}{path});
}

sub http        { $_[0]{http} }
sub port        { $_[0]{http}->port }
sub requests    { $_[0]{http}->requests }
sub count       { $_[0]{http}->count }
sub connections { $_[0]{http}->connections }
sub stop        { $_[0]{http}->stop }

sub set {
    my ($self, %o) = @_;
    $self->{o}{$_} = $o{$_} for keys %o;
    $self->_save;
    return $self;
}

sub _save {
    my ($self) = @_;
    my $tmp = "$self->{opts}.tmp";
    open my $fh, '>', $tmp or croak "$tmp: $!";
    print $fh $JSON->encode($self->{o});
    close $fh;
    rename $tmp, $self->{opts} or croak "rename $tmp: $!";
}

sub _load {
    my ($self) = @_;
    open my $fh, '<', $self->{opts} or return $self->{o};
    local $/;
    my $v = eval { $JSON->decode(<$fh>) };
    return $v // $self->{o};
}

# every JSON-RPC message received, batches flattened
sub rpc {
    my ($self) = @_;
    my @m;
    for my $r (@{$self->requests}) {
        next unless $r->{method} eq 'POST';
        my $v = eval { JSON::PP->new->decode($r->{body}) } // next;
        my $sid = _hdr($r, 'mcp-session-id');
        for my $e (ref $v eq 'ARRAY' ? @$v : ($v)) {
            next unless ref $e eq 'HASH';
            push @m, { %$e, session => $sid };
        }
    }
    return \@m;
}

sub tool_calls {
    my ($self) = @_;
    return [map { ref $_->{params} eq 'HASH' ? $_->{params}{name} // '' : '' }
            grep { ($_->{method} // '') eq 'tools/call' } @{$self->rpc}];
}

sub sessions {
    my ($self) = @_;
    open my $fh, '<', $self->{sfile} or return [];
    my @s = map { chomp; $_ } grep { /\S/ } <$fh>;
    return \@s;
}

sub _hdr {
    my ($req, $name) = @_;
    my ($v) = map { $_->[1] } grep { lc $_->[0] eq $name } @{$req->{headers}};
    return $v;
}

# sse_parse(bytes): the events of a text/event-stream body, as the
# WHATWG rules read them (lines end in CRLF, LF or CR; "data:" with one
# optional space; several data lines joined by "\n"; comments and other
# fields ignored; an event ends at a blank line).  Returns the data of
# each event, in order (a trailing event without its blank line is
# dropped, as a browser drops it).
sub sse_parse {
    my ($bytes) = @_;
    my (@ev, @data);
    for my $l (split /\r\n|\n|\r/, $bytes, -1) {
        if ($l eq '') {
            push @ev, join("\n", @data) if @data;
            @data = ();
            next;
        }
        next if $l =~ /^:/;
        my ($f, $v) = $l =~ /^([^:]*)(?::(.*))?$/;
        $v //= '';
        $v =~ s/^ //;
        push @data, $v if $f eq 'data';
    }
    return @ev;
}

# sse_messages(bytes): sse_parse's events decoded as JSON (undef for one
# that is not JSON)
sub sse_messages {
    my ($bytes) = @_;
    return map { my $d = $_; scalar eval { JSON::PP->new->decode($d) } }
           sse_parse($bytes);
}

# ---- the server side (runs in FakeHTTP's per-connection child) -----------

sub _error_reply {
    my ($st, $code, $msg, $id) = @_;
    return ($st, [], $JSON->encode({ jsonrpc => '2.0', id => $id,
                                     error => { code => $code,
                                                message => $msg } }));
}

sub _handle {
    my ($self, $req) = @_;
    my $o = $self->_load;
    if ($o->{hang}) {
        Time::HiRes::sleep(1) while 1;
    }
    return (307, [Location => $o->{redirect}], '') if $o->{redirect};
    return _error_reply($o->{status}, -32000, "status $o->{status}")
        if $o->{status};
    my ($path) = split /\?/, $req->{target}, 2;
    return _error_reply(404, -32000, "no endpoint at $path")
        if $path ne $o->{path};
    for my $h (sort keys %{$o->{require} // {}}) {
        my $v = _hdr($req, lc $h);
        return _error_reply(401, -32001, "missing or wrong $h")
            if !defined $v || $v ne $o->{require}{$h};
    }
    my $pv = _hdr($req, 'mcp-protocol-version');
    return _error_reply(400, -32600, "unsupported protocol version $pv")
        if defined $pv && !grep { $_ eq $pv } @{$o->{protocols}};
    my $m = $req->{method};
    return $self->_post($o, $req) if $m eq 'POST';
    return $self->_get($o, $req) if $m eq 'GET';
    return $self->_delete($o, $req) if $m eq 'DELETE';
    return _error_reply(405, -32000, "method $m not allowed");
}

# a live session for req, or an error response (list)
sub _session_check {
    my ($self, $o, $req) = @_;
    return () unless $o->{sessions};
    my $sid = _hdr($req, 'mcp-session-id');
    return _error_reply(400, -32600, 'missing Mcp-Session-Id')
        unless defined $sid;
    return _error_reply(404, -32001, 'unknown session')
        unless grep { $_ eq $sid } @{$self->sessions};
    return ();
}

sub _new_session {
    my ($self) = @_;
    my $sid = sprintf('fake-%s-%d-%08x', $self->{name}, $$,
                      int(rand(0xffffffff)));
    open my $fh, '>>', $self->{sfile} or return $sid;
    print $fh "$sid\n";
    close $fh;
    return $sid;
}

sub _post {
    my ($self, $o, $req) = @_;
    my $ct = _hdr($req, 'content-type') // '';
    return _error_reply(415, -32600, 'Content-Type must be application/json')
        unless $ct =~ m{^application/json\s*(?:;|$)}i;
    my $accept = _hdr($req, 'accept') // '';
    return _error_reply(406, -32600,
                        'Accept must list application/json and text/event-stream')
        unless $accept =~ m{application/json} && $accept =~ m{text/event-stream};
    my $msg = eval { JSON::PP->new->decode($req->{body}) };
    return _error_reply(400, -32700, 'parse error') unless ref $msg;
    my @in = ref $msg eq 'ARRAY' ? @$msg : ($msg);
    my $init = grep { ref $_ eq 'HASH' && ($_->{method} // '') eq 'initialize' }
               @in;
    my @hdrs;
    if ($init && $o->{sessions}) {
        push @hdrs, 'Mcp-Session-Id' => $self->_new_session;
    } elsif (my @e = $self->_session_check($o, $req)) {
        return @e;
    }
    my (@out, $slow);
    for my $e (@in) {
        next unless ref $e eq 'HASH' && defined $e->{method}
                    && exists $e->{id};
        $slow = 1 if $e->{method} eq 'tools/call'
                     && ref $e->{params} eq 'HASH'
                     && ($e->{params}{name} // '') eq 'slow';
        push @out, _answer($o, $e);
    }
    return (202, \@hdrs, '') unless @out;
    if ($o->{reply} eq 'sse' || $slow) {
        my @ev = @{$o->{before} // []};
        if ($slow) {
            push @ev, { jsonrpc => '2.0', method => 'notifications/progress',
                        params => { progressToken => 1, progress => 1 } },
                      { sleep => $o->{slow_delay} // 1 };
        }
        push @ev, @out;
        return (200, [@hdrs, 'Content-Type' => 'text/event-stream'],
                _sse($o, \@ev));
    }
    return (200, \@hdrs, $JSON->encode(ref $msg eq 'ARRAY' ? \@out : $out[0]));
}

sub _answer {
    my ($o, $e) = @_;
    my ($m, $id) = ($e->{method}, $e->{id});
    my $p = ref $e->{params} eq 'HASH' ? $e->{params} : {};
    my $r;
    if ($m eq 'initialize') {
        my $want = $p->{protocolVersion} // '';
        my ($v) = grep { $_ eq $want } @{$o->{protocols}};
        $r = { protocolVersion => $v // $o->{protocols}[-1],
               capabilities => { tools => { listChanged => JSON::PP::true } },
               serverInfo => { name => 'fake-mcp', version => '1.0' } };
    } elsif ($m eq 'tools/list') {
        $r = { tools => $o->{tools} };
    } elsif ($m eq 'tools/call') {
        my $n = $p->{name} // '';
        $r = { content => [{ type => 'text', text => "called $n" }],
               isError => JSON::PP::false };
    } elsif ($m eq 'ping') {
        $r = {};
    } else {
        return { jsonrpc => '2.0', id => $id,
                 error => { code => -32601, message => "no method $m" } };
    }
    return { jsonrpc => '2.0', id => $id, result => $r };
}

# events (messages, or { sleep => s }) as pieces for FakeHTTP
sub _sse {
    my ($o, $events) = @_;
    my $f = $o->{framing} // 'lf';
    my $nl = $f eq 'crlf' ? "\r\n" : $f eq 'cr' ? "\r" : "\n";
    my (@pieces, $n);
    for my $ev (@$events) {
        if (exists $ev->{sleep}) {
            push @pieces, { sleep => $ev->{sleep} };
            next;
        }
        push @pieces, { sleep => $o->{event_delay} }
            if $n++ && $o->{event_delay};
        my $text;
        if ($f eq 'multiline') {
            my $pretty = JSON::PP->new->canonical->pretty->encode($ev);
            $pretty =~ s/\n+\z//;
            $text = join('', map { "data: $_$nl" } split /\n/, $pretty) . $nl;
        } elsif ($f eq 'nospace') {
            $text = 'data:' . $JSON->encode($ev) . "$nl$nl";
        } elsif ($f eq 'comments') {
            $text = ": keep-alive$nl" . "event: message$nl" . "id: $n$nl"
                  . "retry: 1000$nl" . ': between fields' . $nl
                  . 'data: ' . $JSON->encode($ev) . "$nl: after$nl$nl";
        } else {
            $text = "id: $n$nl" . 'data: ' . $JSON->encode($ev) . "$nl$nl";
        }
        if ($f eq 'split') {
            for (my $i = 0; $i < length $text; $i += 5) {
                push @pieces, substr($text, $i, 5),
                              { sleep => $o->{split_delay} // 0.05 };
            }
        } else {
            push @pieces, $text;
        }
    }
    return \@pieces;
}

sub _get {
    my ($self, $o, $req) = @_;
    return _error_reply(405, -32000, 'no GET stream')
        unless defined $o->{get_events};
    if (my @e = $self->_session_check($o, $req)) {
        return @e;
    }
    return (200, ['Content-Type' => 'text/event-stream'],
            [@{_sse($o, $o->{get_events})}, { hang => 1 }]);
}

sub _delete {
    my ($self, $o, $req) = @_;
    return _error_reply(405, -32000, 'no sessions') unless $o->{sessions};
    if (my @e = $self->_session_check($o, $req)) {
        return @e;
    }
    my $sid = _hdr($req, 'mcp-session-id');
    my @keep = grep { $_ ne $sid } @{$self->sessions};
    if (open my $fh, '>', $self->{sfile}) {
        print $fh map { "$_\n" } @keep;
        close $fh;
    }
    return (200, [], '');
}

1;
