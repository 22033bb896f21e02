# Sourced by modes.sh: the servers' configs in $TMP (nginx-peer.conf,
# haproxy.cfg, portero.toml, apache.conf), from TMP, binary and JWT_SECRET.
# Ports: nginx 1818x, HAProxy 1828x, portero 1838x, Apache 18485, where x
# is 2 for TLS (HTTP/1.1 and HTTP/2 by ALPN), 3 for h2c and 4 for gRPC
# (portero takes h2c and gRPC on one listener). `/public` needs no token
# anywhere: openssl s_time's request, which carries none.

cat > "$TMP/nginx-peer.conf" << EOF
worker_processes 1;
pid $TMP/nginx-peer.pid;
daemon off;
error_log $TMP/nginx-peer-error.log;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 100000000;
  ssl_certificate $TMP/cert.pem;
  ssl_certificate_key $TMP/key.pem;
  ssl_protocols TLSv1.3;
  ssl_session_cache shared:SSL:10m;
  upstream origin { server 127.0.0.1:18081; keepalive 64; keepalive_requests 100000000; }
  upstream grpc_origin { server 127.0.0.1:18086; keepalive 64; keepalive_requests 100000000; }
  server {
    listen 127.0.0.1:18182 ssl http2;
    listen 127.0.0.1:18183 http2;
    location / {
      proxy_pass http://origin;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
  server {
    listen 127.0.0.1:18184 http2;
    location / { grpc_pass grpc://grpc_origin; }
  }
}
EOF

# peers.sh's checks: a bearer token, HS256 only, its signature, `exp`,
# `iss`, and `sub` injected as X-Auth-Sub.
jwt_rules="  http-request allow if { path /public }
  http-request set-var(txn.bearer) http_auth_bearer
  http-request return status 401 unless { var(txn.bearer) -m found }
  http-request set-var(txn.alg) var(txn.bearer),jwt_header_query('\$.alg')
  http-request return status 401 unless { var(txn.alg) -m str HS256 }
  http-request return status 401 unless { var(txn.bearer),jwt_verify(txn.alg,\"$JWT_SECRET\") -m int 1 }
  http-request set-var(txn.now) date
  http-request set-var(txn.exp) var(txn.bearer),jwt_payload_query('\$.exp','int')
  http-request return status 401 unless { var(txn.exp),sub(txn.now) -m int gt 0 }
  http-request return status 401 unless { var(txn.bearer),jwt_payload_query('\$.iss') -m str bench-issuer }
  http-request set-var(txn.sub) var(txn.bearer),jwt_payload_query('\$.sub')
  http-request return status 401 unless { var(txn.sub) -m found }
  http-request set-header X-Auth-Sub %[var(txn.sub)]"
cat > "$TMP/haproxy.cfg" << EOF
global
  nbthread 1
  maxconn 4096
  ssl-default-bind-options ssl-min-ver TLSv1.3
defaults
  mode http
  timeout connect 5s
  timeout client 30s
  timeout server 30s
  http-reuse always
frontend fe_http
  bind 127.0.0.1:18282 ssl crt $TMP/haproxy.pem alpn h2,http/1.1
  bind 127.0.0.1:18283 proto h2
$jwt_rules
  default_backend be_origin
frontend fe_grpc
  bind 127.0.0.1:18284 proto h2
$jwt_rules
  default_backend be_grpc
backend be_origin
  server origin 127.0.0.1:18081
backend be_grpc
  server origin 127.0.0.1:18086 proto h2
EOF

cat > "$TMP/portero.toml" << EOF
[server]
threads = 1
grace_period = "0s"
shutdown_timeout = "1s"
data_dir = "$TMP/portero-store"
access_log = false
public_url = "http://127.0.0.1:18383"

[[listen]]
addr = "127.0.0.1:18382"
tls_cert = "$TMP/cert.pem"
tls_key = "$TMP/key.pem"

[[listen]]
addr = "127.0.0.1:18383"

[admin]
listen = "127.0.0.1:19383"

[upstreams.origin]
servers = ["127.0.0.1:18081"]

[upstreams.grpc]
servers = ["127.0.0.1:18086"]
protocol = "h2c"

[issuers.bench-issuer]
iss = "bench-issuer"

[[issuers.bench-issuer.keys]]
kid = "bench"
alg = "HS256"
secret_env = "JWT_SECRET"

# Signs people in for the session rows: portero's own routes, and Apache.
[issuers.bench-own]
kind = "oauth2"
login_client_id = "bench-web"

[[issuers.bench-own.users]]
username = "bench-user"
secret_hash = "$(printf 'bench-password' | "$binary" hash-secret | tr -d '\n')"

[[issuers.bench-own.clients]]
client_id = "bench-web"
redirect_uris = ["http://127.0.0.1:18383/.portero/callback"]

[[issuers.bench-own.clients]]
client_id = "apache"
secret_hash = "$(printf 'apache-bench-secret' | "$binary" hash-secret --fast | tr -d '\n')"
redirect_uris = ["http://127.0.0.1:18485/redirect_uri"]

[[routes]]
name = "public"
path = "/public"
upstream = "origin"
public = true

[[routes]]
name = "grpc"
path = "/bench.Echo/"
upstream = "grpc"

[routes.headers]
x-auth-sub = "sub"

[[routes]]
name = "app"
path = "/app/"
upstream = "origin"
login = "bench-own"
issuers = ["bench-issuer"]

[routes.headers]
x-auth-sub = "sub"

[[routes]]
name = "api"
path = "/"
upstream = "origin"
issuers = ["bench-issuer"]

[routes.headers]
x-auth-sub = "sub"
EOF

modules=/usr/lib/apache2/modules
cat > "$TMP/apache.conf" << EOF
ServerName 127.0.0.1
PidFile $TMP/apache.pid
Listen 127.0.0.1:18485
ErrorLog $TMP/apache-error.log
LogLevel warn
User www-data
Group www-data
LoadModule mpm_event_module $modules/mod_mpm_event.so
LoadModule authn_core_module $modules/mod_authn_core.so
LoadModule authz_core_module $modules/mod_authz_core.so
LoadModule authz_user_module $modules/mod_authz_user.so
LoadModule proxy_module $modules/mod_proxy.so
LoadModule proxy_http_module $modules/mod_proxy_http.so
LoadModule auth_openidc_module $modules/mod_auth_openidc.so
ThreadsPerChild 64
ThreadLimit 64
MaxRequestWorkers 64
KeepAlive On
MaxKeepAliveRequests 0
KeepAliveTimeout 30

OIDCProviderMetadataURL http://127.0.0.1:18383/oauth2/bench-own/.well-known/openid-configuration
OIDCClientID apache
OIDCClientSecret apache-bench-secret
OIDCRedirectURI http://127.0.0.1:18485/redirect_uri
OIDCCryptoPassphrase modes-bench-passphrase-0123456789
OIDCScope openid
OIDCPKCEMethod S256
OIDCCacheType shm
OIDCSessionType server-cache
OIDCSessionInactivityTimeout 86400
OIDCSessionMaxDuration 86400

<Location />
  AuthType openid-connect
  Require valid-user
</Location>
ProxyPass /redirect_uri !
ProxyPass / http://127.0.0.1:18081/
EOF
