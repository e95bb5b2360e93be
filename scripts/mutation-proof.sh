#!/usr/bin/env bash
# Proves that security and lifecycle tests fail when the check they cover is removed:
# for each case, patch the check out of the source, run the test (it must FAIL), restore.
# Usage: bash scripts/mutation-proof.sh      (needs a clean working tree for the touched files,
#        sqlx-cli for the migrated build database; ONLY=<test name part> runs matching cases)
set -uo pipefail
cd "$(dirname "$0")/.."
base_url="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
# Some cases change SQL inside compile-checked `query!` macros: build against a migrated database
# (not `.sqlx/`), which the tests also use as the server for their own databases.
DATABASE_URL=$(bash scripts/migrated-db.sh logto_signin_mutation "$base_url")
export DATABASE_URL
export SQLX_OFFLINE=false

# file ~ exact text to replace ~ replacement ~ test filter (\n in the texts is a newline)
cases=(
  "src/auth/id_token.rs~if let Some(expected) = expect.nonce {~if let Some(expected) = None::<\&str> {~id_token::nonce_mismatch_is_rejected"
  "src/auth/id_token.rs~if audiences.iter().any(~if false \&\& audiences.iter().any(~id_token::an_extra_untrusted_audience_is_rejected"
  "src/auth/flow.rs~Some(s) if s == sub => Ok(info),~Some(_) => Ok(info),~resilience::userinfo_failures_fail_the_sign_in"
  "src/web/auth.rs~if iss == Some(metadata.issuer.as_str()) {~if iss.is_some() {~callback::a_wrong_iss_parameter_is_refused_before_the_token_request"
  "src/session/repo.rs~            and (refresh_lease is null or refresh_lease_until < now())~            and true~lifecycle::concurrent_refreshes_on_two_instances_are_serialised"
  "src/auth/flow.rs~        request = request.add_extra_param(\"resource\", resource.to_owned());\n    }\n    if settings~    }\n    if settings~lifecycle::configured_resources_are_named_in_the_authorization_request"
  "src/web/api.rs~(Some(r), None) if state.settings.is_configured_resource(r) =>~(Some(r), None) if valid(r) =>~lifecycle::a_refused_resource_is_a_clear_4xx"
  "src/auth/jwks.rs~Some(set) if set.fetched_at.elapsed() < self.max_age => set,~Some(set) => set,~resilience::a_jwks_outage_keeps_known_keys_only_within_the_max_age"
  "src/auth/jwks.rs~keys: usable_keys(\&keys),~keys: [usable_keys(\&keys), self.snapshot(jwks_uri).map(|s| s.keys.clone()).unwrap_or_default()].concat(),~backchannel::a_key_the_provider_no_longer_publishes_is_refused_after_jwks_max_age"
  "src/admin/cursor.rs~        if !(0..=MAX_MICROS).contains(\&activity_micros) {~        if false {~admin::bad_queries_are_a_400"
  "src/auth/jwt.rs~        validation.validate_nbf = true;\n~~id_token::a_token_not_valid_yet_is_rejected"
  "src/telemetry.rs~            http.path = %request.path(),~            http.path = %request.uri(),~lifecycle::codes_states_and_cookies_never_reach_the_logs"
  "src/auth/jwks.rs~let slot = \&mut log.unknown_kid[caller as usize];~let slot = \&mut log.unknown_kid[0];~backchannel::back_channel_posts_cannot_spend_the_refetch_a_sign_in_needs"
  "src/web/extract.rs~                crate::lifecycle::refresh::revalidate(\&state.services, session_id).await?;~                let _ = session_id;~admin::a_role_removed_at_logto_stops_counting_within_the_revalidation_bound"
  "src/startup.rs~        tokio::spawn(crate::lifecycle::revalidation::run(services.clone()));~~admin::a_session_logto_no_longer_honours_ends_in_the_background"
  "src/session/repo.rs~    if !fresh {~    if false \&\& !fresh {~backchannel::a_replayed_logout_token_is_refused"
  "src/admin/mod.rs~    if signed_in_recently(session, settings) {~    if true {~admin::admin_actions_without_a_known_recent_sign_in_ask_for_a_step_up"
  "src/auth/id_token.rs~None => return Err(TokenError::Claim(\"auth_time is missing although max_age was requested\")),~None => {}~admin::a_step_up_whose_id_token_lacks_auth_time_is_refused"
  "src/web/rate_limit.rs~Some(client) => RateLimits::check(pick(\&state.rate_limits), budget_key(client)),~Some(_) => Ok(()),~rate_limit::sign_in_starts_beyond_the_limit_get_a_429_and_create_nothing"
  "src/session/sealed.rs~format!(\"{PREFIX}{}\", URL_SAFE_NO_PAD.encode(bytes))~token.to_owned()~pages::the_signed_in_home_page_shows_the_user_and_never_the_tokens"
  "src/templates.rs~.context(\"parsing the built-in templates\")?;~.context(\"parsing the built-in templates\")?;\n    tera.autoescape_on(Vec::<\&str>::new());~lib:templates::tests::every_template_renders_and_escapes_every_value"
  "src/users/repo.rs~set name = case when \$8::jsonb ? 'name' then \$2 else name end,~set name = \$2,~lifecycle::a_refresh_keeps_profile_fields_that_only_userinfo_carries"
  "src/users/mod.rs~    hf_username.or(hf_user_id)~    hf_username~admin::a_hugging_face_account_without_a_username_shows_the_same_everywhere"
  "src/admin/repo.rs~    term.replace('\\\\', \"\\\\\\\\\").replace('%', \"\\\\%\").replace('_', \"\\\\_\")~    term.to_owned()~admin::search_finds_by_name_username_and_email_case_insensitively"
)

printf '| removed check | file | test | result with the check removed |\n| --- | --- | --- | --- |\n'
for case in "${cases[@]}"; do
  IFS='~' read -r file from to test <<<"$case"
  # ONLY=<part of a test name> runs the matching cases alone.
  [[ -z "${ONLY:-}" || "$test" == *"$ONLY"* ]] || continue
  cp "$file" "$file.orig"
  python3 - "$file" "$from" "$to" <<'PY'
import sys
unescape = lambda s: s.replace('\\&', '&').replace('\\n', '\n')
path, old, new = sys.argv[1], unescape(sys.argv[2]), unescape(sys.argv[3])
text = open(path).read()
if old not in text:
    sys.exit(f"pattern not found in {path}: {old}")
open(path, "w").write(text.replace(old, new, 1))
PY
  if [ $? -ne 0 ]; then mv "$file.orig" "$file"; touch "$file"; echo "| \`$from\` | $file | $test | pattern not found |"; continue; fi
  case "$test" in
    lib:*) target=(--lib); test=${test#lib:} ;;
    *) target=(--test api) ;;
  esac
  if cargo test --quiet "${target[@]}" "$test" -- --exact >/tmp/mutation.log 2>&1; then
    result="still PASSES (the test does not guard this check)"
  elif grep -q "test result: FAILED" /tmp/mutation.log; then
    result="FAILS, as it must"
  else
    result="did not build or run (see /tmp/mutation.log)"
  fi
  mv "$file.orig" "$file"
  # The restored file keeps the copy's older mtime: touch it, or cargo would keep the mutant.
  touch "$file"
  echo "| \`$from\` | $file | \`$test\` | $result |"
done
