tcp LISTEN *:8443 *:*
tcp LISTEN 0.0.0.0:2024 0.0.0.0:*
tcp LISTEN 127.0.0.1:8080 0.0.0.0:*
udp UNCONN 0.0.0.0:5353 0.0.0.0:*
udp UNCONN [::1]:323 [::]:*
