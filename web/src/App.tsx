import { lazy, Suspense, useEffect, type ReactNode } from 'react';
import { notify } from './components/notify';
import { useTranslation } from 'react-i18next';
import { Navigate, Outlet, Route, Routes, useLocation, useNavigate } from 'react-router-dom';
import { useSession } from './auth/AuthContext';
import { onExpired, type Role } from './auth/token';
import { Layout } from './components/Layout';
import { Loading } from './components/Loading';
import { queryClient } from './api/queryClient';

// each area is its own chunk, loaded when first opened
const Login = lazy(() => import('./pages/Login'));
const SignUp = lazy(() => import('./pages/SignUp'));
const Verify = lazy(() => import('./pages/Verify'));
const Forgot = lazy(() => import('./pages/Forgot'));
const Reset = lazy(() => import('./pages/Reset'));
const Account = lazy(() => import('./pages/Account'));
const Home = lazy(() => import('./pages/Home'));
const Containers = lazy(() => import('./pages/Containers'));
const Traffic = lazy(() => import('./pages/Traffic'));
const Distributor = lazy(() => import('./pages/distributor/Distributor'));
const OperatorDashboard = lazy(() => import('./pages/operator/Dashboard'));
const OperatorServers = lazy(() => import('./pages/operator/Servers'));
const OperatorContainers = lazy(() => import('./pages/operator/AllContainers'));
const OperatorUsers = lazy(() => import('./pages/operator/Users'));
const OperatorPlans = lazy(() => import('./pages/operator/Plans'));
const OperatorSerials = lazy(() => import('./pages/operator/Serials'));
const OperatorRentals = lazy(() => import('./pages/operator/Rentals'));
const OperatorAlerts = lazy(() => import('./pages/operator/Alerts'));
const OperatorAudit = lazy(() => import('./pages/operator/Audit'));
const OperatorTraffic = lazy(() => import('./pages/operator/Traffic'));
const NotFound = lazy(() => import('./pages/NotFound'));
const EnrolFirst = lazy(() => import('./pages/security/EnrolFirst'));

function RequireSession({ children, roles }: { children: ReactNode; roles?: Role[] }) {
  const session = useSession();
  const location = useLocation();
  if (!session) return <Navigate to="/login" replace state={{ from: location.pathname }} />;
  if (session.enrolOnly) return <EnrolFirst />; // nothing else answers such a token
  if (roles && !roles.includes(session.role)) return <Navigate to="/" replace />;
  return <>{children}</>;
}

function SignedOut({ children }: { children: ReactNode }) {
  return useSession() ? <Navigate to="/" replace /> : <>{children}</>;
}

export default function App() {
  const { t } = useTranslation();
  const navigate = useNavigate();
  useEffect(() => {
    onExpired(() => {
      queryClient.clear();
      notify('orange', t('app.expired'));
      navigate('/login');
    });
  }, [navigate, t]);

  return (
    <Suspense fallback={<Loading />}>
      <Routes>
        <Route path="/login" element={<SignedOut><Login /></SignedOut>} />
        <Route path="/signup" element={<SignedOut><SignUp /></SignedOut>} />
        <Route path="/forgot" element={<SignedOut><Forgot /></SignedOut>} />
        <Route path="/verify/:token" element={<Verify />} />
        <Route path="/reset/:token" element={<Reset />} />
        <Route element={<RequireSession><Layout /></RequireSession>}>
          <Route index element={<Home />} />
          <Route path="containers" element={<Containers />} />
          <Route path="traffic" element={<Traffic />} />
          <Route path="account" element={<Account />} />
          <Route path="distributor" element={<RequireSession roles={['distributor', 'admin']}><Distributor /></RequireSession>} />
          <Route path="operator" element={<RequireSession roles={['admin']}><Outlet /></RequireSession>}>
            <Route index element={<OperatorDashboard />} />
            <Route path="servers" element={<OperatorServers />} />
            <Route path="containers" element={<OperatorContainers />} />
            <Route path="users" element={<OperatorUsers />} />
            <Route path="plans" element={<OperatorPlans />} />
            <Route path="serials" element={<OperatorSerials />} />
            <Route path="rentals" element={<OperatorRentals />} />
            <Route path="alerts" element={<OperatorAlerts />} />
            <Route path="audit" element={<OperatorAudit />} />
            <Route path="traffic" element={<OperatorTraffic />} />
          </Route>
          <Route path="*" element={<NotFound />} />
        </Route>
      </Routes>
    </Suspense>
  );
}
