export { AuthError, createTokenAuthenticator, generateToken, parseTokens, MIN_TOKEN_LENGTH, type Authenticator, type Role } from './tokens.js';
export {
  bearerInterceptor,
  clientSecurityFromEnv,
  grpcClientSecurityEnvSchema,
  grpcClientSetup,
  grpcServerSecurity,
  grpcServerSecurityEnvSchema,
  type GrpcClientSecurityEnv,
  type GrpcClientSecurityOptions,
  type GrpcServerSecurity,
  type GrpcServerSecurityEnv,
} from './grpc.js';
export { ensureLocalPki, type LocalPki } from './pki.js';
