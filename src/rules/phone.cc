/*
 * phone.cc - the C interface (phone.h) to libphonenumber.
 *
 * The one C++ file of the project: everything C++ (strings, exceptions, the
 * library's singleton) stays behind extern "C" functions that take and
 * return plain bytes. An exception never crosses into C: it becomes -1.
 */
#include "scrubgate/phone.h"

#include <phonenumbers/logger.h>
#include <phonenumbers/phonenumber.pb.h>
#include <phonenumbers/phonenumberutil.h>

#include <cstring>
#include <mutex>
#include <string>

using i18n::phonenumbers::PhoneNumber;
using i18n::phonenumbers::PhoneNumberUtil;

namespace {

std::once_flag init_flag;
const PhoneNumberUtil *util;
/*
 * Regions tried for a national-format candidate in text, after the site's
 * phone_region. Not every region: with all 245, most grouped digit runs (dates,
 * postcodes, order numbers) are valid somewhere, and a candidate would cost
 * milliseconds. These are the regions whose visitors most often reach TikTok
 * advertisers' sites, plus the NANP (US covers its +1 shapes).
 */
const char *const detect_regions[] = {"US", "GB", "DE", "FR", "IN", "BR", "IT", "ES", "NL", "BE",
                                      "AT", "CH", "PL", "SE", "TR", "AU", "MX", "JP", "IL", "IE",
                                      "PT", "ID", "PH", "VN", "TH", "MY", "SA", "AE", "EG", "NG"};

void init()
{
    PhoneNumberUtil *u = PhoneNumberUtil::GetInstance();
    /* The library may log what it parses: nothing of a number is ever logged. */
    u->SetLogger(new i18n::phonenumbers::NullLogger());
    util = u;
}

const PhoneNumberUtil &lib()
{
    std::call_once(init_flag, init);
    return *util;
}

/* The input without leading blanks, as a string; false when empty or too long. */
bool prepare(const char *in, size_t len, std::string *out)
{
    while (len > 0 && (*in == ' ' || *in == '\t')) {
        in++;
        len--;
    }
    if (len == 0 || len > SG_PHONE_MAX_INPUT)
        return false;
    out->assign(in, len);
    return true;
}

bool international(const std::string &s)
{
    return s[0] == '+';
}

std::string digits(const std::string &s)
{
    std::string d;
    for (char c : s)
        if (c >= '0' && c <= '9')
            d += c;
    return d;
}

/*
 * s with a leading "00" read as "+" (the international prefix most of the
 * world dials), when that is what it is: the number it then parses to keeps
 * every digit after the "00". "0011 32 1234 5678" (Australia's prefix) would
 * lose one, so it is not read that way: only the site's region can say.
 */
bool plus_for_00(const PhoneNumberUtil &u, const std::string &s, PhoneNumber *num)
{
    if (s.size() < 3 || s[0] != '0' || s[1] != '0' || s[2] < '1' || s[2] > '9')
        return false;
    std::string plus = "+" + s.substr(2), e164;
    if (u.Parse(plus, "ZZ", num) != PhoneNumberUtil::NO_PARSING_ERROR || !u.IsValidNumber(*num))
        return false;
    u.Format(*num, PhoneNumberUtil::E164, &e164);
    return e164.substr(1) == digits(s).substr(2);
}

/*
 * Parse s as a person in region wrote it (its national prefix, its own
 * international prefix: "011" in the US, "0011" in Australia) and check the
 * number is valid, whichever country it belongs to.
 */
bool valid_in(const PhoneNumberUtil &u, const std::string &s, const char *region, PhoneNumber *num)
{
    return u.Parse(s, region, num) == PhoneNumberUtil::NO_PARSING_ERROR && u.IsValidNumber(*num);
}

} // namespace

extern "C" bool sg_phone_region_known(const char *region)
{
    try {
        const PhoneNumberUtil &u = lib();
        return region && std::strlen(region) == 2 && region[0] >= 'A' && region[0] <= 'Z' &&
               region[1] >= 'A' && region[1] <= 'Z' && u.GetCountryCodeForRegion(region) != 0;
    } catch (...) {
        return false;
    }
}

extern "C" int sg_phone_e164(const char *in, size_t len, const char *region, char *out, size_t cap)
{
    try {
        const PhoneNumberUtil &u = lib();
        std::string s, e164;
        PhoneNumber num;
        if (!prepare(in, len, &s))
            return -1;
        /*
         * A number with its own "+" (also after leading punctuation, as in TikTok's
         * "(+1)2133734253") is parsed with "ZZ", the unknown region; a national one only
         * with the site's region, which also knows that region's international prefix; a
         * leading "00" without a region only when it is unambiguous (plus_for_00). Nothing
         * else is guessed. An unknown region behaves as none (the library knows no national
         * format for it).
         */
        bool ok = valid_in(u, s, region && !international(s) ? region : "ZZ", &num) ||
                  plus_for_00(u, s, &num);
        if (!ok)
            return -1;
        u.Format(num, PhoneNumberUtil::E164, &e164);
        if (e164.size() + 1 > cap)
            return -1;
        std::memcpy(out, e164.c_str(), e164.size() + 1);
        return 0;
    } catch (...) {
        return -1;
    }
}

extern "C" int sg_phone_text_candidate(const char *s, size_t len, const char *region)
{
    try {
        const PhoneNumberUtil &u = lib();
        std::string in;
        PhoneNumber num;
        if (!prepare(s, len, &in))
            return 0;
        if (international(in))
            return valid_in(u, in, "ZZ", &num) ? 1 : 0;
        if (plus_for_00(u, in, &num) || (region && valid_in(u, in, region, &num)))
            return 1;
        for (const char *r : detect_regions) /* a national number, or one dialled from there */
            if (valid_in(u, in, r, &num))
                return 1;
        return 0;
    } catch (...) {
        return -1;
    }
}
