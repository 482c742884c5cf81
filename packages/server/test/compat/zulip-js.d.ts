/**
 * The part of zulip-js (which ships no types) that the compatibility test calls, typed from its
 * lib/ source: every call resolves to the server's parsed JSON, whatever the status.
 */
declare module 'zulip-js' {
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- responses are checked by the assertions
  type Json = any;
  type Params = Record<string, unknown>;

  export interface ZulipConfig {
    /** An ini file with `[api]` `email`, `key` and `site`, as Zulip's bot downloads give. */
    zuliprc?: string;
    realm?: string;
    username?: string;
    password?: string;
    apiKey?: string;
    apiURL?: string;
  }

  export interface ZulipClient {
    config: ZulipConfig;
    /** Any endpoint: POST parameters as multipart form fields, others in the query string. */
    callEndpoint(endpoint: string, method?: string, params?: Params): Promise<Json>;
    accounts: { retrieve(): Promise<Json> };
    users: {
      retrieve(params?: Params): Promise<Json>;
      me: {
        getProfile(): Promise<Json>;
        subscriptions: { add(params: Params): Promise<Json>; remove(params: Params): Promise<Json> };
      };
    };
    streams: {
      retrieve(params?: Params): Promise<Json>;
      getStreamId(name: string | Params): Promise<Json>;
      subscriptions: { retrieve(params?: Params): Promise<Json> };
    };
    queues: { register(params: Params): Promise<Json>; deregister(params: Params): Promise<Json> };
    events: { retrieve(params: Params): Promise<Json> };
  }

  /** Fetches an API key with username + password when `apiKey` is absent. */
  export default function zulip(config: ZulipConfig): Promise<ZulipClient>;
}
