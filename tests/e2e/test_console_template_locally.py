"""The deployed console's resources (template.yaml, section "console") on the local runtime: what exists
locally is created (the site bucket, the trigger function, the people's app client), what only matters in
AWS (CloudFront, the people's groups) is skipped by name with a note, never an error."""
from __future__ import annotations


def test_the_console_section_starts_locally_and_says_what_it_skips(api):
    runtime = api.runtime
    for skipped in ("ConsoleDistribution", "ConsoleOriginAccessControl", "ConsoleResponseHeadersPolicy",
                    "ConsoleReadGroup"):
        assert any(note.startswith(f"{skipped} (") and "not created locally" in note for note in runtime.notes), skipped
    runtime.client("s3").head_bucket(Bucket=runtime.physical("ConsoleSiteBucket"))
    pool = runtime.physical("UserPool")
    client = runtime.client("cognito-idp").describe_user_pool_client(
        UserPoolId=pool, ClientId=runtime.physical("ConsoleClient"))["UserPoolClient"]
    assert client["AllowedOAuthFlows"] == ["code"] and "ClientSecret" not in client
    assert client["CallbackURLs"][0].startswith("https://") and client["CallbackURLs"][0].endswith(".cloudfront.invalid/")
    assert runtime.physical("PeopleTokenFunction")
