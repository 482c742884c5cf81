/**
 * The Zulip API level whose semantics Concord implements for its resources: the level of the
 * reference OpenAPI document (Zulip 11). Among others: deactivation sends `peer_remove` for the
 * user's channels (377), `stream` `delete` carries only ids (343), subscribe results are keyed by
 * user id (289).
 */
export const FEATURE_LEVEL = 420;
export const ZULIP_VERSION = '11.0-concord-0.1.0';
