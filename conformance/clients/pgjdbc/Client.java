// The pgjdbc client of the live conformance kit (see ../PROTOCOL.md).
//
// It reads one JSON request per line on standard input, connects with pgjdbc through
// java.sql.DriverManager, asks the server whether the session is encrypted, and answers one
// JSON line on standard output. Nothing else is written there.
//
// Run with the JDK's single-file launcher:
//   java -cp /usr/share/java/postgresql.jar conformance/clients/pgjdbc/Client.java
//
// Parameter mapping, as a pgjdbc user would do it (pgjdbc takes a JDBC URL, not a libpq URI):
//   - URL jdbc:postgresql://HOST:PORT/DBNAME with the request's host, port and dbname;
//   - Properties: user, password, sslmode, sslrootcert, sslcert, sslkey, ApplicationName
//     (application_name), connectTimeout (connect_timeout, seconds); each only when the
//     request has it, so pgjdbc's own defaults apply otherwise (sslmode prefer);
//   - assumeMinServerVersion=9.0: without it pgjdbc sets application_name with a SET after
//     the connection is made instead of sending it in the startup packet, and the server's
//     connection log (which the harness reads) would not show it;
//   - loginTimeout, pgjdbc's bound on the whole connection attempt, a little below the
//     harness's wait;
//   - hostaddr: pgjdbc has no such setting; the host name is resolved by Java;
//   - home: pgjdbc's default files (~/.postgresql/root.crt, postgresql.crt, postgresql.pk8)
//     are looked up under the "user.home" system property, so that property is set to the
//     request's home before each connection.

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.net.URLEncoder;
import java.nio.charset.StandardCharsets;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.ResultSet;
import java.sql.Statement;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Properties;
import java.util.logging.Level;
import java.util.logging.Logger;

public class Client {

  /** A small JSON reader for the request: objects, strings, numbers, true, false, null. */
  static final class Json {
    private final String s;
    private int i;

    Json(String s) {
      this.s = s;
    }

    static Object parse(String text) {
      Json p = new Json(text);
      p.ws();
      Object v = p.value();
      p.ws();
      if (p.i != p.s.length()) {
        throw new IllegalArgumentException("trailing text at " + p.i);
      }
      return v;
    }

    private void ws() {
      while (i < s.length() && Character.isWhitespace(s.charAt(i))) {
        i++;
      }
    }

    private char peek() {
      if (i >= s.length()) {
        throw new IllegalArgumentException("unexpected end of JSON");
      }
      return s.charAt(i);
    }

    private void expect(char c) {
      if (peek() != c) {
        throw new IllegalArgumentException("expected '" + c + "' at " + i);
      }
      i++;
    }

    private Object value() {
      char c = peek();
      if (c == '{') {
        return object();
      }
      if (c == '[') {
        return array();
      }
      if (c == '"') {
        return string();
      }
      if (s.startsWith("true", i)) {
        i += 4;
        return Boolean.TRUE;
      }
      if (s.startsWith("false", i)) {
        i += 5;
        return Boolean.FALSE;
      }
      if (s.startsWith("null", i)) {
        i += 4;
        return null;
      }
      int start = i;
      while (i < s.length() && "+-0123456789.eE".indexOf(s.charAt(i)) >= 0) {
        i++;
      }
      if (start == i) {
        throw new IllegalArgumentException("unexpected '" + c + "' at " + i);
      }
      return Double.parseDouble(s.substring(start, i));
    }

    private Map<String, Object> object() {
      Map<String, Object> m = new LinkedHashMap<>();
      expect('{');
      ws();
      if (peek() == '}') {
        i++;
        return m;
      }
      while (true) {
        ws();
        String k = string();
        ws();
        expect(':');
        ws();
        m.put(k, value());
        ws();
        if (peek() == ',') {
          i++;
          continue;
        }
        expect('}');
        return m;
      }
    }

    private java.util.List<Object> array() {
      java.util.List<Object> l = new java.util.ArrayList<>();
      expect('[');
      ws();
      if (peek() == ']') {
        i++;
        return l;
      }
      while (true) {
        ws();
        l.add(value());
        ws();
        if (peek() == ',') {
          i++;
          continue;
        }
        expect(']');
        return l;
      }
    }

    private String string() {
      expect('"');
      StringBuilder b = new StringBuilder();
      while (true) {
        char c = peek();
        i++;
        if (c == '"') {
          return b.toString();
        }
        if (c != '\\') {
          b.append(c);
          continue;
        }
        char e = peek();
        i++;
        switch (e) {
          case '"': b.append('"'); break;
          case '\\': b.append('\\'); break;
          case '/': b.append('/'); break;
          case 'b': b.append('\b'); break;
          case 'f': b.append('\f'); break;
          case 'n': b.append('\n'); break;
          case 'r': b.append('\r'); break;
          case 't': b.append('\t'); break;
          case 'u':
            if (i + 4 > s.length()) {
              throw new IllegalArgumentException("short \\u escape");
            }
            b.append((char) Integer.parseInt(s.substring(i, i + 4), 16));
            i += 4;
            break;
          default:
            throw new IllegalArgumentException("bad escape at " + i);
        }
      }
    }

    static String quote(String v) {
      if (v == null) {
        return "null";
      }
      StringBuilder b = new StringBuilder("\"");
      for (int k = 0; k < v.length(); k++) {
        char c = v.charAt(k);
        switch (c) {
          case '"': b.append("\\\""); break;
          case '\\': b.append("\\\\"); break;
          case '\n': b.append("\\n"); break;
          case '\r': b.append("\\r"); break;
          case '\t': b.append("\\t"); break;
          default:
            if (c < 0x20 || c == 0x2028 || c == 0x2029) {
              b.append(String.format("\\u%04x", (int) c));
            } else {
              b.append(c);
            }
        }
      }
      return b.append('"').toString();
    }
  }

  /** The first line of the message, with the innermost cause's when that says more. */
  static String firstLine(Throwable t) {
    String m = oneLine(t);
    Throwable root = t;
    while (root.getCause() != null && root.getCause() != root) {
      root = root.getCause();
    }
    if (root != t) {
      String r = oneLine(root);
      if (!m.contains(r)) {
        m = m + " (" + root.getClass().getSimpleName() + ": " + r + ")";
      }
    }
    return m.length() > 2000 ? m.substring(0, 2000) : m;
  }

  static String oneLine(Throwable t) {
    String m = t.getMessage();
    if (m == null || m.trim().isEmpty()) {
      m = t.getClass().getName();
    }
    m = m.trim();
    int nl = m.indexOf('\n');
    if (nl >= 0) {
      m = m.substring(0, nl).trim();
    }
    if (m.length() > 2000) {
      m = m.substring(0, 2000);
    }
    return m;
  }

  static String str(Object o) {
    return o instanceof String ? (String) o : null;
  }

  /** Connects for one request; returns {outcome, message}. */
  @SuppressWarnings("unchecked")
  static String[] run(Map<String, Object> req) {
    Map<String, Object> params = req.get("params") instanceof Map
        ? (Map<String, Object>) req.get("params") : new LinkedHashMap<>();
    double timeoutS = req.get("timeout_s") instanceof Double ? (Double) req.get("timeout_s") : 20.0;
    int budget = Math.max(1, (int) Math.floor(timeoutS) - 2);

    String home = str(req.get("home"));
    if (home != null) {
      System.setProperty("user.home", home);
    }

    String host = str(params.get("host"));
    if (host == null) {
      host = "localhost";
    }
    if (host.indexOf(':') >= 0 && !host.startsWith("[")) {
      host = "[" + host + "]";
    }
    String port = str(params.get("port"));
    String dbname = str(params.get("dbname"));
    String url = "jdbc:postgresql://" + host + (port != null ? ":" + port : "") + "/"
        + (dbname != null ? URLEncoder.encode(dbname, StandardCharsets.UTF_8) : "");

    Properties props = new Properties();
    copy(params, "user", props, "user");
    copy(params, "password", props, "password");
    copy(params, "sslmode", props, "sslmode");
    copy(params, "sslrootcert", props, "sslrootcert");
    copy(params, "sslcert", props, "sslcert");
    copy(params, "sslkey", props, "sslkey");
    copy(params, "application_name", props, "ApplicationName");
    String ct = str(params.get("connect_timeout"));
    if (ct != null) {
      props.setProperty("connectTimeout", ct);
    }
    props.setProperty("assumeMinServerVersion", "9.0");
    props.setProperty("loginTimeout", Integer.toString(budget));

    try (Connection conn = DriverManager.getConnection(url, props)) {
      try (Statement st = conn.createStatement();
           ResultSet rs = st.executeQuery(
               "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")) {
        boolean ssl = rs.next() && rs.getBoolean(1);
        return new String[] {ssl ? "tls" : "plain", null};
      } catch (Throwable t) {
        return new String[] {"fail", "connected, but the query failed: " + firstLine(t)};
      }
    } catch (Throwable t) {
      return new String[] {"fail", firstLine(t)};
    }
  }

  static void copy(Map<String, Object> params, String key, Properties props, String prop) {
    String v = str(params.get(key));
    if (v != null) {
      props.setProperty(prop, v);
    }
  }

  @SuppressWarnings("unchecked")
  public static void main(String[] args) throws Exception {
    // Standard output carries the replies only; the driver's log goes to standard error.
    PrintStream out = new PrintStream(new java.io.FileOutputStream(java.io.FileDescriptor.out),
        false, StandardCharsets.UTF_8);
    System.setOut(System.err);
    Logger.getLogger("org.postgresql").setLevel(Level.OFF);
    Class.forName("org.postgresql.Driver");

    BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
    String line;
    while ((line = in.readLine()) != null) {
      if (line.trim().isEmpty()) {
        continue;
      }
      String id = null;
      String[] result;
      try {
        Object parsed = Json.parse(line);
        if (!(parsed instanceof Map)) {
          throw new IllegalArgumentException("request is not a JSON object");
        }
        Map<String, Object> req = (Map<String, Object>) parsed;
        id = str(req.get("id"));
        result = run(req);
      } catch (Throwable t) {
        System.err.println("pgjdbc client: " + t);
        result = new String[] {"fail", "bad request: " + firstLine(t)};
      }
      out.print("{\"id\":" + Json.quote(id) + ",\"outcome\":" + Json.quote(result[0])
          + ",\"message\":" + Json.quote(result[1]) + "}\n");
      out.flush();
    }
    out.flush();
  }
}
