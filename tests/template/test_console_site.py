"""The deployed console (issue 14; template.yaml section "console"): a private, versioned, TLS-only site
bucket read only by its CloudFront distribution through origin access control; the response headers
the page's own-origin design needs; the people's app client (authorization code, no secret, the
distribution as callback); the four scope groups mapped by the pre-token-generation trigger (V2_0);
the API's default client for people."""
from __future__ import annotations

from .conftest import resources_of


def test_the_site_bucket_is_private_versioned_and_read_only_by_the_distribution(cfn):
    bucket = cfn["Resources"]["ConsoleSiteBucket"]["Properties"]
    assert bucket["VersioningConfiguration"] == {"Status": "Enabled"}
    assert all(bucket["PublicAccessBlockConfiguration"][k] is True for k in
               ("BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets"))
    assert bucket["OwnershipControls"] == {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}
    (policy,) = [p for p in resources_of(cfn, "AWS::S3::BucketPolicy").values()
                 if p["Properties"]["Bucket"] == {"Ref": "ConsoleSiteBucket"}]
    allows = [s for s in policy["Properties"]["PolicyDocument"]["Statement"] if s["Effect"] == "Allow"]
    assert allows == [{
        "Sid": "ConsoleDistributionReads", "Effect": "Allow", "Principal": {"Service": "cloudfront.amazonaws.com"},
        "Action": "s3:GetObject", "Resource": {"Fn::Sub": "${ConsoleSiteBucket.Arn}/*"},
        "Condition": {"StringEquals": {"AWS:SourceArn": {"Fn::Sub":
            "arn:${AWS::Partition}:cloudfront::${AWS::AccountId}:distribution/${ConsoleDistribution}"}}}}]


def test_the_distribution_reaches_the_bucket_through_origin_access_control_and_the_api_uncached(cfn):
    config = cfn["Resources"]["ConsoleDistribution"]["Properties"]["DistributionConfig"]
    origins = {o["Id"]: o for o in config["Origins"]}
    assert origins["site"]["OriginAccessControlId"] == {"Fn::GetAtt": ["ConsoleOriginAccessControl", "Id"]}
    assert origins["site"]["S3OriginConfig"] == {"OriginAccessIdentity": ""}  # no legacy OAI
    oac = cfn["Resources"]["ConsoleOriginAccessControl"]["Properties"]["OriginAccessControlConfig"]
    assert (oac["OriginAccessControlOriginType"], oac["SigningBehavior"], oac["SigningProtocol"]) == ("s3", "always", "sigv4")
    assert origins["api"]["CustomOriginConfig"] == {"OriginProtocolPolicy": "https-only", "OriginSSLProtocols": ["TLSv1.2"]}
    assert origins["api"]["DomainName"] == {"Fn::Sub": "${PaymentApi}.execute-api.${AWS::Region}.${AWS::URLSuffix}"}
    default = config["DefaultCacheBehavior"]
    assert (default["TargetOriginId"], default["ViewerProtocolPolicy"]) == ("site", "redirect-to-https")
    assert default["ResponseHeadersPolicyId"] == {"Ref": "ConsoleResponseHeadersPolicy"}
    (api,) = config["CacheBehaviors"]
    assert (api["PathPattern"], api["TargetOriginId"], api["ViewerProtocolPolicy"]) == ("/v1/*", "api", "https-only")
    # Managed-CachingDisabled, Managed-AllViewerExceptHostHeader (forwards Authorization when not caching)
    assert api["CachePolicyId"] == "4135ea2d-6df8-44a3-9df3-4b5a84be39ad"
    assert api["OriginRequestPolicyId"] == "b689b0a8-53d0-40ab-baf2-68738e2966ac"
    assert config["DefaultRootObject"] == "index.html"


def test_the_response_headers_match_the_pages_own_origin_design(cfn):
    headers = cfn["Resources"]["ConsoleResponseHeadersPolicy"]["Properties"]["ResponseHeadersPolicyConfig"][
        "SecurityHeadersConfig"]
    csp = headers["ContentSecurityPolicy"]["ContentSecurityPolicy"]["Fn::Sub"]
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
    assert directives["default-src"] == "'none'" and directives["frame-ancestors"] == "'none'"
    assert directives["script-src"] == directives["style-src"] == "'self'"
    # the page's own origin (its files and the API under /v1) and the hosted UI's token endpoint only
    assert directives["connect-src"] == "'self' https://${UserPoolDomain}.auth.${AWS::Region}.amazoncognito.com"
    assert headers["StrictTransportSecurity"]["AccessControlMaxAgeSec"] >= 31536000
    assert headers["FrameOptions"]["FrameOption"] == "DENY"
    assert all(h["Override"] is True for h in headers.values())
    # the same policy as the local runtime's console, but for the token endpoint
    from mxflow_local.gateway.console import SECURITY_HEADERS

    local = dict(d.strip().split(" ", 1) for d in dict(SECURITY_HEADERS)["Content-Security-Policy"].split(";"))
    assert {k: v for k, v in directives.items() if k != "connect-src"} == {k: v for k, v in local.items() if k != "connect-src"}


def test_people_sign_in_with_a_public_code_client_back_to_the_distribution(cfn):
    client = cfn["Resources"]["ConsoleClient"]["Properties"]
    assert client["GenerateSecret"] is False
    assert client["AllowedOAuthFlows"] == ["code"] and client["AllowedOAuthFlowsUserPoolClient"] is True
    # people may ask for openid only: the payments scopes come from their groups, through the trigger
    assert client["AllowedOAuthScopes"] == ["openid"]
    assert client["CallbackURLs"] == client["LogoutURLs"] == [{"Fn::Sub": "https://${ConsoleDistribution.DomainName}/"}]
    api_client = cfn["Resources"]["ApiClient"]["Properties"]
    assert api_client["AllowedOAuthFlows"] == ["client_credentials"]  # untouched: machines keep their own client


def test_groups_named_for_the_four_scopes_are_mapped_by_the_v2_trigger(cfn):
    from mxflow.people import SCOPE_GROUPS

    groups = {g["Properties"]["GroupName"] for g in resources_of(cfn, "AWS::Cognito::UserPoolGroup").values()}
    assert groups == set(SCOPE_GROUPS)
    scopes = {f"payments/{s['ScopeName']}" for s in cfn["Resources"]["PaymentsResourceServer"]["Properties"]["Scopes"]}
    # the four people's scopes; payments/engine is the payment engine's own client's, never a person's
    assert scopes - set(SCOPE_GROUPS.values()) == {"payments/engine"} and set(SCOPE_GROUPS.values()) <= scopes
    pool = cfn["Resources"]["UserPool"]["Properties"]
    assert pool["LambdaConfig"]["PreTokenGenerationConfig"] == {
        "LambdaArn": {"Fn::GetAtt": ["PeopleTokenFunction", "Arn"]}, "LambdaVersion": "V2_0"}
    assert pool["UserPoolTier"] in ("ESSENTIALS", "PLUS")  # access token customisation (V2_0) needs one of them
    permission = cfn["Resources"]["PeopleTokenPermission"]["Properties"]
    assert permission["Principal"] == "cognito-idp.amazonaws.com"
    assert permission["SourceArn"] == {"Fn::GetAtt": ["UserPool", "Arn"]}


def test_the_api_acts_for_the_stacks_own_client_when_a_persons_token_names_none(cfn):
    variables = cfn["Resources"]["ApiFunction"]["Properties"]["Environment"]["Variables"]
    assert variables["CONSOLE_DEFAULT_CLIENT_ID"] == {"Ref": "ApiClient"}


def test_the_outputs_make_deploy_console_reads_exist(cfn):
    assert {"ConsoleUrl", "ConsoleBucketName", "ConsoleDistributionId", "ConsoleClientId", "AuthUrl", "ApiUrl"} <= set(cfn["Outputs"])
