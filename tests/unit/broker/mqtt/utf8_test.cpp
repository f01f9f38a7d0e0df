// MQTT UTF-8 Encoded Strings (spec 1.5.4): well-formed UTF-8 as RFC 3629 defines
// it, no surrogates [MQTT-1.5.4-1] and no U+0000 [MQTT-1.5.4-2].
#include <gtest/gtest.h>

#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <vector>

#include "broker/mqtt/utf8.h"

using namespace starling::mqtt;

namespace {

std::string bytes(std::initializer_list<uint8_t> b) { return std::string(b.begin(), b.end()); }

struct Case {
  const char* name;
  std::string s;
};

TEST(Utf8, AsciiAndEmptyAccepted) {
  EXPECT_TRUE(is_valid_mqtt_utf8(""));
  EXPECT_TRUE(is_valid_mqtt_utf8("abc"));
  EXPECT_TRUE(is_valid_mqtt_utf8("sport/tennis/player1"));
  EXPECT_TRUE(is_valid_mqtt_utf8(bytes({0x7F})));
}

TEST(Utf8, MultiByteCharactersAccepted) {
  for (const Case& c : {
           Case{"é U+00E9", bytes({0xC3, 0xA9})},
           Case{"€ U+20AC", bytes({0xE2, 0x82, 0xAC})},
           Case{"𝄞 U+1D11E", bytes({0xF0, 0x9D, 0x84, 0x9E})},
           Case{"U+0080 smallest 2-byte", bytes({0xC2, 0x80})},
           Case{"U+07FF largest 2-byte", bytes({0xDF, 0xBF})},
           Case{"U+0800 smallest 3-byte", bytes({0xE0, 0xA0, 0x80})},
           Case{"U+D7FF below the surrogates", bytes({0xED, 0x9F, 0xBF})},
           Case{"U+E000 above the surrogates", bytes({0xEE, 0x80, 0x80})},
           Case{"U+10000 smallest 4-byte", bytes({0xF0, 0x90, 0x80, 0x80})},
           Case{"U+10FFFF largest code point", bytes({0xF4, 0x8F, 0xBF, 0xBF})},
           Case{"mixed", "a/é/€/" + bytes({0xF0, 0x9D, 0x84, 0x9E}) + "/z"},
       }) {
    SCOPED_TRACE(c.name);
    EXPECT_TRUE(is_valid_mqtt_utf8(c.s));
  }
}

// Noncharacters and control characters are "SHOULD NOT" in 1.5.4, not "MUST
// NOT": a receiver may not refuse them on that ground alone.
TEST(Utf8, NoncharactersAndControlCharactersAccepted) {
  for (const Case& c : {
           Case{"U+FFFF", bytes({0xEF, 0xBF, 0xBF})},
           Case{"U+FFFE", bytes({0xEF, 0xBF, 0xBE})},
           Case{"U+FDD0", bytes({0xEF, 0xB7, 0x90})},
           Case{"U+10FFFE", bytes({0xF4, 0x8F, 0xBF, 0xBE})},
           Case{"U+0001", bytes({0x01})},
           Case{"U+001F", bytes({0x1F})},
           Case{"U+009F", bytes({0xC2, 0x9F})},
       }) {
    SCOPED_TRACE(c.name);
    EXPECT_TRUE(is_valid_mqtt_utf8(c.s));
  }
}

// "A UTF-8 encoded sequence 0xEF 0xBB 0xBF is always interpreted as U+FEFF" and
// must not be skipped or stripped [MQTT-1.5.4-3]: it is valid.
TEST(Utf8, ByteOrderMarkAccepted) {
  EXPECT_TRUE(is_valid_mqtt_utf8(bytes({0xEF, 0xBB, 0xBF})));
  EXPECT_TRUE(is_valid_mqtt_utf8(bytes({0xEF, 0xBB, 0xBF, 'a'})));
}

// [MQTT-1.5.4-2]
TEST(Utf8, NullCharacterRefused) {
  EXPECT_FALSE(is_valid_mqtt_utf8(std::string_view("\0", 1)));
  EXPECT_FALSE(is_valid_mqtt_utf8(std::string_view("a\0b", 3)));
  EXPECT_FALSE(is_valid_mqtt_utf8(std::string_view("ab\0", 3)));
}

// [MQTT-1.5.4-1]: U+D800..U+DFFF.
TEST(Utf8, SurrogatesRefused) {
  for (const Case& c : {
           Case{"U+D800", bytes({0xED, 0xA0, 0x80})},
           Case{"U+DBFF", bytes({0xED, 0xAF, 0xBF})},
           Case{"U+DC00", bytes({0xED, 0xB0, 0x80})},
           Case{"U+DFFF", bytes({0xED, 0xBF, 0xBF})},
           Case{"surrogate pair (CESU-8)", bytes({0xED, 0xA0, 0xBD, 0xED, 0xB8, 0x80})},
       }) {
    SCOPED_TRACE(c.name);
    EXPECT_FALSE(is_valid_mqtt_utf8(c.s));
  }
}

TEST(Utf8, OverlongEncodingsRefused) {
  for (const Case& c : {
           Case{"C0 80 (U+0000)", bytes({0xC0, 0x80})},
           Case{"C0 AF ('/')", bytes({0xC0, 0xAF})},
           Case{"C1 BF (U+007F)", bytes({0xC1, 0xBF})},
           Case{"E0 80 80 (U+0000)", bytes({0xE0, 0x80, 0x80})},
           Case{"E0 9F BF (U+07FF)", bytes({0xE0, 0x9F, 0xBF})},
           Case{"F0 80 80 80 (U+0000)", bytes({0xF0, 0x80, 0x80, 0x80})},
           Case{"F0 8F BF BF (U+FFFF)", bytes({0xF0, 0x8F, 0xBF, 0xBF})},
       }) {
    SCOPED_TRACE(c.name);
    EXPECT_FALSE(is_valid_mqtt_utf8(c.s));
  }
}

TEST(Utf8, AboveU10FFFFRefused) {
  for (const Case& c : {
           Case{"F4 90 80 80 (U+110000)", bytes({0xF4, 0x90, 0x80, 0x80})},
           Case{"F5 80 80 80", bytes({0xF5, 0x80, 0x80, 0x80})},
           Case{"F7 BF BF BF", bytes({0xF7, 0xBF, 0xBF, 0xBF})},
           Case{"5-byte form F8 88 80 80 80", bytes({0xF8, 0x88, 0x80, 0x80, 0x80})},
           Case{"6-byte form FC 84 80 80 80 80", bytes({0xFC, 0x84, 0x80, 0x80, 0x80, 0x80})},
           Case{"FE", bytes({0xFE})},
           Case{"FF", bytes({0xFF})},
       }) {
    SCOPED_TRACE(c.name);
    EXPECT_FALSE(is_valid_mqtt_utf8(c.s));
  }
}

TEST(Utf8, InvalidContinuationRefused) {
  for (const Case& c : {
           Case{"C3 28", bytes({0xC3, 0x28})},
           Case{"E2 28 A1", bytes({0xE2, 0x28, 0xA1})},
           Case{"E2 82 28", bytes({0xE2, 0x82, 0x28})},
           Case{"F0 28 8C BC", bytes({0xF0, 0x28, 0x8C, 0xBC})},
           Case{"F0 9D 84 28", bytes({0xF0, 0x9D, 0x84, 0x28})},
           Case{"C3 C3 A9 (lead byte where a continuation belongs)", bytes({0xC3, 0xC3, 0xA9})},
           Case{"lone continuation 80", bytes({0x80})},
           Case{"continuation after ASCII", bytes({'a', 0xBF})},
           Case{"extra continuation after é", bytes({0xC3, 0xA9, 0xA9})},
       }) {
    SCOPED_TRACE(c.name);
    EXPECT_FALSE(is_valid_mqtt_utf8(c.s));
  }
}

TEST(Utf8, TruncatedSequencesRefused) {
  for (const Case& c : {
           Case{"C3", bytes({0xC3})},
           Case{"a C3", bytes({'a', 0xC3})},
           Case{"E2 82", bytes({0xE2, 0x82})},
           Case{"E2", bytes({0xE2})},
           Case{"F0 9D 84", bytes({0xF0, 0x9D, 0x84})},
           Case{"F0 9D", bytes({0xF0, 0x9D})},
           Case{"E2 82 then ASCII", bytes({0xE2, 0x82, 'a'})},
       }) {
    SCOPED_TRACE(c.name);
    EXPECT_FALSE(is_valid_mqtt_utf8(c.s));
  }
}

// The check covers the whole string, not just its start (a long valid prefix,
// then one bad byte).
TEST(Utf8, BadByteAfterLongValidPrefixRefused) {
  std::string s(1000, 'a');
  for (int i = 0; i < 100; ++i) s += bytes({0xE2, 0x82, 0xAC});
  EXPECT_TRUE(is_valid_mqtt_utf8(s));
  EXPECT_FALSE(is_valid_mqtt_utf8(s + bytes({0xED, 0xA0, 0x80})));
  EXPECT_FALSE(is_valid_mqtt_utf8(s + std::string(1, '\0')));
  EXPECT_FALSE(is_valid_mqtt_utf8(s + bytes({0xC0, 0x80})));
}

}  // namespace
