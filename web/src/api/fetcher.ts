// The one place requests are made: every generated function (src/api/generated) calls
// berthFetch with the method, path, query and body the OpenAPI document gives it.
import { currentToken, signOutExpired } from '../auth/token';

export interface ErrorDetail {
  field: string;
  message: string;
}

/** A refusal or failure: the API's `{"error": ..., "details": [...]}`, or a network error
 * (status 0). */
export class ApiError<T = unknown> extends Error {
  status: number;
  details: ErrorDetail[];
  body: T | undefined;

  constructor(status: number, message: string, details: ErrorDetail[] = [], body?: T) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.details = details;
    this.body = body;
  }

  /** The platform (or a service behind it) is down or restarting: worth retrying. */
  get unavailable(): boolean {
    return this.status === 0 || this.status === 502 || this.status === 503 || this.status === 504;
  }
}

// orval types every hook's error with this (see orval's custom-client guide)
export type ErrorType<Error> = ApiError<Error>;
export type BodyType<BodyData> = BodyData;

export interface RequestConfig {
  url: string;
  method: 'GET' | 'POST' | 'PUT' | 'DELETE' | 'PATCH' | string;
  params?: Record<string, unknown>;
  data?: unknown;
  headers?: Record<string, string>;
  signal?: AbortSignal;
}

function withQuery(url: string, params?: Record<string, unknown>): string {
  if (!params) return url;
  const query = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== undefined && value !== null) query.append(key, String(value));
  }
  const text = query.toString();
  return text ? `${url}?${text}` : url;
}

export const berthFetch = async <T>(config: RequestConfig): Promise<T> => {
  const headers: Record<string, string> = { Accept: 'application/json', ...config.headers };
  const token = currentToken();
  if (token) headers.Authorization = `Bearer ${token}`;
  let body: string | undefined;
  if (config.data !== undefined) {
    headers['Content-Type'] = 'application/json';
    body = JSON.stringify(config.data);
  }
  let response: Response;
  try {
    response = await fetch(withQuery(config.url, config.params), {
      method: config.method, headers, body, signal: config.signal,
    });
  } catch (error) {
    if (error instanceof DOMException && error.name === 'AbortError') throw error;
    throw new ApiError(0, 'network');
  }
  const text = await response.text();
  let parsed: unknown;
  try {
    parsed = text ? JSON.parse(text) : undefined;
  } catch {
    parsed = undefined;
  }
  if (!response.ok) {
    const reply = (parsed ?? {}) as { error?: unknown; details?: unknown };
    const message = typeof reply.error === 'string' ? reply.error : response.statusText;
    const details = Array.isArray(reply.details) ? (reply.details as ErrorDetail[]) : [];
    if (response.status === 401 && token) signOutExpired();
    throw new ApiError(response.status, message, details, parsed);
  }
  return parsed as T;
};

export default berthFetch;
