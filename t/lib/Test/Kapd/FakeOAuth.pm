package Test::Kapd::FakeOAuth;

# Test::Kapd::FakeOAuth -- an OAuth 2.1 authorization server and the MCP
# server it protects, in one Test::Kapd::FakeHTTP on 127.0.0.1, for the
# `kap mcp add` flow and token refresh (t/708, t/709):
#
#   my $o = Test::Kapd::FakeOAuth->new($t, port => $t->port('oauth'),
#                                      addr => '127.0.0.2', ttl => 3600);
#   $o->url;          # http://127.0.0.1:PORT/mcp, the protected MCP server
#   $o->set(%opts);   # options for the next requests
#   $o->state;        # clients, codes, tokens, counts (see below)
#   $o->requests;     # every HTTP request (FakeHTTP's form)
#
#   GET  /.well-known/oauth-protected-resource/mcp   RFC 9728 metadata
#   GET  /.well-known/oauth-authorization-server      RFC 8414 metadata
#   POST /register     RFC 7591: a client_id for the redirect_uris given
#   GET  /authorize    checks client, redirect_uri, response_type=code,
#                      code_challenge_method=S256, resource; 302 to the
#                      redirect_uri with a code (bound to the challenge)
#                      and the state
#   POST /token        authorization_code (the code once, redirect_uri,
#                      client_id, resource and the PKCE verifier checked:
#                      BASE64URL(SHA256(verifier)) == challenge) or
#                      refresh_token (rotated: the old one dies); tokens
#                      live ttl seconds; token_delay seconds before
#                      answering
#   POST/DELETE /mcp   401 with WWW-Authenticate (resource_metadata, unless
#                      no_resource_metadata) without a live Bearer token;
#                      else initialize (a session), notifications (202),
#                      tools/list (tools)
#
# Options: ttl (3600), token_delay (0), bad_state (redirect with another
# state), no_resource_metadata, no_s256 (metadata without S256), tools.
# state(): { clients => {id => {redirect_uris}}, codes => {...},
#   tokens => {access => expires_at}, refresh => {token => 1},
#   challenges => [...], verifiers => [...], grants => {authorization_code
#   => N, refresh_token => N}, refused => [reasons] }.
# revoke() makes every access token expired (the next use is a 401).
# register($k, NAME, AUTH_DIR) runs `kap-mcp add NAME URL` through the
# whole flow (Test::KapInit $k; the browser step a curl that follows the
# redirects) and returns $k->run's result; registered_token(NAME,
# AUTH_DIR) is the Bearer token that registration holds now;
# refresh_grants() counts refresh_token grants.

use strict;
use warnings;

use Carp;
use Digest::SHA qw(sha256);
use Fcntl qw(:flock);
use JSON::PP;
use MIME::Base64 qw(encode_base64url);
use Time::HiRes ();
use Test::Kapd::FakeHTTP;

my $JSON = JSON::PP->new->canonical;

sub new {
    my ($class, $t, %o) = @_;
    my $self = bless {
        t     => $t,
        opts  => $t->testdir . '/fakeoauth.opts',
        sfile => $t->testdir . '/fakeoauth.state',
    }, $class;
    my $port = delete $o{port} // $t->port('oauth');
    my $addr = delete $o{addr} // '127.0.0.1';
    $self->{base} = "http://$addr:$port";
    $self->{o} = { ttl => 3600, token_delay => 0, tools => [
        { name => 'search', description => "Search\nthe docs",
          inputSchema => { type => 'object' } },
        { name => 'fetch', description => 'Fetch a page',
          inputSchema => { type => 'object' } } ], %o };
    $self->_save_opts;
    $self->_update(sub { %{$_[0]} = (clients => {}, codes => {}, tokens => {},
        refresh => {}, challenges => [], verifiers => [],
        grants => {}, refused => []) });
    $self->{http} = Test::Kapd::FakeHTTP->new($t, port => $port,
        name => 'oauth', addr => $addr,
        handler => sub { $self->_handle(@_) });
    return $self;
}

sub url      { "$_[0]{base}/mcp" }
sub base     { $_[0]{base} }
sub requests { $_[0]{http}->requests }

sub set {
    my ($self, %o) = @_;
    $self->{o}{$_} = $o{$_} for keys %o;
    $self->_save_opts;
    return $self;
}

sub _save_opts {
    my ($self) = @_;
    open my $fh, '>', "$self->{opts}.tmp" or croak "$self->{opts}: $!";
    print $fh $JSON->encode($self->{o});
    close $fh;
    rename "$self->{opts}.tmp", $self->{opts} or croak "rename: $!";
}

sub _opts {
    my ($self) = @_;
    open my $fh, '<', $self->{opts} or return $self->{o};
    local $/;
    return eval { $JSON->decode(<$fh>) } // $self->{o};
}

# read-modify-write of the state file under a lock (one child per
# connection shares it)
sub _update {
    my ($self, $fn) = @_;
    open my $fh, '+>>', $self->{sfile} or croak "$self->{sfile}: $!";
    flock($fh, LOCK_EX) or croak "flock: $!";
    seek($fh, 0, 0);
    local $/;
    my $txt = <$fh>;
    my $s = length($txt // '') ? $JSON->decode($txt) : {};
    my @r = $fn->($s);
    truncate($fh, 0);
    seek($fh, 0, 0);
    print $fh $JSON->encode($s);
    close $fh;
    return wantarray ? @r : $r[0];
}

sub state { $_[0]->_update(sub { $_[0] }) }

sub register {
    my ($self, $k, $name, $auth) = @_;
    my $t = $self->{t};
    my $open = $t->testdir . '/open.sh';
    open(my $fh, '>', $open) or croak "$open: $!";
    print $fh "#!/bin/sh\nexec /usr/bin/curl -sS -L --noproxy '*' --max-redirs 2 -o /dev/null \"\$1\"\n";
    close $fh;
    chmod 0755, $open;
    return $k->run({ env => { KAP_OPEN => $open, KAP_AUTH_DIR => $auth,
                              KAP_MCP_TIMEOUT => 20 } },
                   $t->builddir . '/kap-mcp', 'add', $name, $self->url);
}

sub registered_token {
    my ($self, $name, $auth) = @_;
    open(my $fh, '<', "$auth/$name.json") or return '';
    my $reg = eval { decode_json(do { local $/; <$fh> }) } // {};
    return (($reg->{headers} // {})->{Authorization} // '') =~ s/^Bearer //r;
}

sub refresh_grants { $_[0]->state->{grants}{refresh_token} // 0 }

sub revoke {
    my ($self) = @_;
    $self->_update(sub { $_[0]{tokens}{$_} = 0 for keys %{$_[0]{tokens}} });
}

sub _form {
    my ($s) = @_;
    my %f;
    for my $kv (split /&/, $s // '') {
        my ($k, $v) = split /=/, $kv, 2;
        for ($k, $v) { next unless defined; tr/+/ /; s/%([0-9A-Fa-f]{2})/chr hex $1/ge }
        $f{$k} = $v;
    }
    return \%f;
}

sub _hdr {
    my ($req, $name) = @_;
    for my $h (@{$req->{headers}}) {
        return $h->[1] if lc $h->[0] eq lc $name;
    }
    return undef;
}

sub _json { my ($st, $v, @h) = @_; return ($st, [@h], $JSON->encode($v)) }

sub _refuse {
    my ($self, $why, $st) = @_;
    $self->_update(sub { push @{$_[0]{refused}}, $why });
    return _json($st // 400, { error => 'invalid_request',
                               error_description => $why });
}

sub _handle {
    my ($self, $req) = @_;
    my $o = $self->_opts;
    my $b = $self->{base};
    my ($path, $query) = split /\?/, $req->{target}, 2;
    if ($path eq '/.well-known/oauth-protected-resource/mcp') {
        return _json(200, { resource => "$b/mcp",
            authorization_servers => [$b], scopes_supported => ['tools'] });
    }
    if ($path eq '/.well-known/oauth-authorization-server') {
        return _json(200, { issuer => $b,
            authorization_endpoint => "$b/authorize",
            token_endpoint => "$b/token",
            registration_endpoint => "$b/register",
            response_types_supported => ['code'],
            code_challenge_methods_supported =>
                $o->{no_s256} ? ['plain'] : ['S256'] });
    }
    return $self->_register($req) if $path eq '/register';
    return $self->_authorize($o, _form($query)) if $path eq '/authorize';
    return $self->_token($o, _form($req->{body})) if $path eq '/token';
    return $self->_mcp($o, $req) if $path eq '/mcp';
    return _json(404, { error => 'not found' });
}

sub _register {
    my ($self, $req) = @_;
    my $m = eval { decode_json($req->{body}) };
    return $self->_refuse('registration: not JSON') unless ref $m eq 'HASH';
    my $ru = $m->{redirect_uris};
    return $self->_refuse('registration: no loopback redirect_uris')
        unless ref $ru eq 'ARRAY' && @$ru
            && !grep { !m{^http://127\.0\.0\.1:\d+/callback$} } @$ru;
    my $id = $self->_update(sub {
        my $id = 'client-' . (1 + keys %{$_[0]{clients}});
        $_[0]{clients}{$id} = { redirect_uris => $ru,
                                auth => $m->{token_endpoint_auth_method} };
        $id });
    return _json(201, { client_id => $id, redirect_uris => $ru });
}

sub _authorize {
    my ($self, $o, $q) = @_;
    my $c = $self->state->{clients}{$q->{client_id} // ''};
    return $self->_refuse('authorize: unknown client') unless $c;
    return $self->_refuse('authorize: redirect_uri not registered')
        unless grep { $_ eq ($q->{redirect_uri} // '') } @{$c->{redirect_uris}};
    return $self->_refuse('authorize: response_type')
        unless ($q->{response_type} // '') eq 'code';
    return $self->_refuse('authorize: no S256 code_challenge')
        unless ($q->{code_challenge_method} // '') eq 'S256'
            && ($q->{code_challenge} // '') =~ /^[A-Za-z0-9_-]{43}$/;
    return $self->_refuse('authorize: resource')
        unless ($q->{resource} // '') eq "$self->{base}/mcp";
    return $self->_refuse('authorize: no state') unless length($q->{state} // '');
    my $code = 'code-' . int(rand(1e9));
    $self->_update(sub {
        $_[0]{codes}{$code} = { client => $q->{client_id},
            challenge => $q->{code_challenge},
            redirect_uri => $q->{redirect_uri} };
        push @{$_[0]{challenges}}, $q->{code_challenge};
        push @{$_[0]{scopes}}, $q->{scope} // '';
    });
    my $state = $o->{bad_state} ? 'not-the-state' : $q->{state};
    (my $es = $state) =~ s/([^A-Za-z0-9_.~-])/sprintf('%%%02X', ord $1)/ge;
    return (302, [Location => "$q->{redirect_uri}?code=$code&state=$es"], '');
}

sub _issue {
    my ($self, $o, $s) = @_;
    my $n = 1 + keys %{$s->{tokens}};
    my $at = "at-$n-" . int(rand(1e9));
    my $rt = "rt-$n-" . int(rand(1e9));
    $s->{tokens}{$at} = time + $o->{ttl};
    $s->{refresh}{$rt} = 1;
    return { access_token => $at, token_type => 'Bearer',
             expires_in => $o->{ttl}, refresh_token => $rt };
}

sub _token {
    my ($self, $o, $f) = @_;
    Time::HiRes::sleep($o->{token_delay}) if $o->{token_delay};
    my $g = $f->{grant_type} // '';
    if ($g eq 'authorization_code') {
        my $s = $self->state;
        my $c = $s->{codes}{$f->{code} // ''};
        return $self->_refuse('token: unknown or used code') unless $c;
        return $self->_refuse('token: client') unless ($f->{client_id} // '') eq $c->{client};
        return $self->_refuse('token: redirect_uri')
            unless ($f->{redirect_uri} // '') eq $c->{redirect_uri};
        return $self->_refuse('token: resource')
            unless ($f->{resource} // '') eq "$self->{base}/mcp";
        return $self->_refuse('token: PKCE verifier does not match')
            unless encode_base64url(sha256($f->{code_verifier} // '')) eq $c->{challenge};
        my $r = $self->_update(sub {
            delete $_[0]{codes}{$f->{code}};
            push @{$_[0]{verifiers}}, $f->{code_verifier};
            $_[0]{grants}{$g}++;
            $self->_issue($o, $_[0]) });
        return _json(200, $r);
    }
    if ($g eq 'refresh_token') {
        my $r = $self->_update(sub {
            return undef unless delete $_[0]{refresh}{$f->{refresh_token} // ''};
            $_[0]{grants}{$g}++;
            $self->_issue($o, $_[0]) });
        return $r ? _json(200, $r) : $self->_refuse('token: bad refresh_token');
    }
    return $self->_refuse('token: grant_type');
}

sub _mcp {
    my ($self, $o, $req) = @_;
    my $auth = _hdr($req, 'Authorization') // '';
    my ($tok) = $auth =~ /^Bearer (\S+)$/;
    my $exp = defined $tok ? $self->state->{tokens}{$tok} : undef;
    unless ($exp && $exp > time) {
        my $ch = $o->{no_resource_metadata} ? 'Bearer realm="mcp"'
            : qq{Bearer resource_metadata="$self->{base}/.well-known/oauth-protected-resource/mcp"};
        return _json(401, { error => 'unauthorized' },
                     'WWW-Authenticate' => $ch);
    }
    return (200, [], '') if $req->{method} eq 'DELETE';
    my $m = eval { decode_json($req->{body}) } // {};
    my $meth = $m->{method} // '';
    return (202, [], '') unless defined $m->{id};
    my $res = $meth eq 'initialize'
        ? { protocolVersion => '2025-06-18', capabilities => { tools => {} },
            serverInfo => { name => 'fake-oauth-mcp', version => '1' } }
        : $meth eq 'tools/list' ? { tools => $o->{tools} } : undef;
    return _json(200, { jsonrpc => '2.0', id => $m->{id},
                        error => { code => -32601, message => 'no method' } })
        unless $res;
    return _json(200, { jsonrpc => '2.0', id => $m->{id}, result => $res },
                 $meth eq 'initialize' ? ('Mcp-Session-Id' => 'sess-1') : ());
}

1;
