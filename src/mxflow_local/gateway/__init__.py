"""The local API gateway's parts (mxflow_local.http_api puts them together):

- routes: the REST APIs, routes, authorizers and gateway responses of the translated template, and
  API Gateway's resource resolution;
- proxy: the Lambda proxy integration (request -> event, result -> reply);
- responses: the answers API Gateway makes itself;
- admin: the /_local/ admin routes (faults, Region switch, routes);
- server: the HTTP server on 127.0.0.1 (the standard library's, with werkzeug's chunked decoding).
"""
