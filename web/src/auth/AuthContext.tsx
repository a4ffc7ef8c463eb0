import { createContext, useContext, useEffect, useState, type ReactNode } from 'react';
import { currentSession, restore, subscribe, type Session } from './token';

const AuthContext = createContext<Session | null>(null);

export function AuthProvider({ children }: { children: ReactNode }) {
  const [session, setSession] = useState<Session | null>(() => currentSession() ?? restore());
  useEffect(() => subscribe(setSession), []);
  return <AuthContext.Provider value={session}>{children}</AuthContext.Provider>;
}

export function useSession(): Session | null {
  return useContext(AuthContext);
}
